"""Bayesian analysis of A/B tests on listening, skips and retention.

The public names are re-exported here as the modules land.
"""

__all__: list[str] = []
