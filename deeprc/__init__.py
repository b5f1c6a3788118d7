"""DeepRC: Deep Radical-Cylon runtime and HPC deployment kit."""

__version__ = "0.1.0"
