"""Models of listening behaviour: plays per user and period, and skips.

Modules
-------
play_count
    :class:`PlayCountModel`, hierarchical count model of plays per user and period.
skip
    :class:`SkipModel`, hierarchical logistic model of skips with crossed
    user and track effects, and :func:`skip_table` to build its input.
"""

from models.listening.play_count import PlayCountModel
from models.listening.skip import SkipModel, skip_table

__all__ = [
    "PlayCountModel",
    "SkipModel",
    "skip_table",
]
