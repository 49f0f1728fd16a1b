"""ACD/IVR engine: routing core, Asterisk shells and the live service."""
