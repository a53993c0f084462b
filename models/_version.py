"""Version of the listening-models distribution."""

__version__ = "0.1.0"
