"""repoctx: repository-aware code completion."""

__version__ = "0.1.0"
