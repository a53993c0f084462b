"""Models of listening behaviour: plays per user and period, skips, user x artist counts.

Modules
-------
play_count
    :class:`PlayCountModel`, hierarchical count model of plays per user and period.
skip
    :class:`SkipModel`, hierarchical logistic model of skips with crossed
    user and track effects, and :func:`skip_table` to build its input.
user_artist
    :class:`UserArtistModel`, crossed user and artist effects on a user x
    artist play-count matrix, with a dispersion model for the heavy tail.
"""

from models.listening.play_count import PlayCountModel
from models.listening.skip import SkipModel, skip_table
from models.listening.user_artist import UserArtistModel

__all__ = [
    "PlayCountModel",
    "SkipModel",
    "UserArtistModel",
    "skip_table",
]
