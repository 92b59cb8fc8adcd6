"""ARV: printed photos that come to life in augmented reality."""

__version__ = "0.1.0"
