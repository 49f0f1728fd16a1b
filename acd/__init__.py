"""ACD/IVR engine: routing core, Asterisk shells and the live service."""

from acd import native as _native  # noqa: F401  (honours ACD_PURE_PYTHON before any import)
