"""Center configuration: schema, safe YAML loading, validation and agent roster expansion."""
