"""Center configuration: schema, safe YAML loading, validation, agent roster expansion and the
router's policy built from it."""
