"""SimPy simulation of the contact center through the real routing core."""

from acd import native as _native  # noqa: F401  (honours ACD_PURE_PYTHON before sim.engine)
