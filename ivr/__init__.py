"""IVR call flows: YAML definitions, validation and an interpreter over a Channel protocol."""
