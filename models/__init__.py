"""listening-models: Bayesian models of how people use a music-streaming service."""

from models._version import __version__

__all__ = ["__version__"]
