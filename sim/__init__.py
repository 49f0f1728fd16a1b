"""SimPy simulation of the contact center through the real routing core."""
