"""Listening logs: schema, validation, loading, summaries for the models, and simulation.

The input is a listening log with one row per play (``user_id``, ``timestamp`` and
``track_id`` and/or ``artist_id``; optionally ``ms_played``, ``skipped``,
``session_id``) and an optional users table (``user_id``, ``country``, ``plan``,
``signup_date``). :func:`validate_events` checks and types the log;
the summary functions reduce it to what the models consume.
"""

from models.data._engagement_sim import SimulatedEngagement, simulate_engagement
from models.data.io import load_events, load_users
from models.data.partitioned import simulate_service_partitioned
from models.data.simulate import (
    ChurnOptions,
    ListeningOptions,
    NetworkOptions,
    ServiceTruth,
    SimulatedService,
    UserOptions,
    simulate_bgbb,
    simulate_bgnbd,
    simulate_sbg,
    simulate_service,
)
from models.data.summaries import (
    UserArtistCounts,
    cohort_table,
    period_play_counts,
    retention_matrix,
    summarize_activity,
    user_artist_matrix,
)
from models.data.validation import validate_events, validate_users

__all__ = [
    "ChurnOptions",
    "ListeningOptions",
    "NetworkOptions",
    "ServiceTruth",
    "SimulatedEngagement",
    "SimulatedService",
    "UserArtistCounts",
    "UserOptions",
    "cohort_table",
    "load_events",
    "load_users",
    "period_play_counts",
    "retention_matrix",
    "simulate_bgbb",
    "simulate_bgnbd",
    "simulate_engagement",
    "simulate_sbg",
    "simulate_service",
    "simulate_service_partitioned",
    "summarize_activity",
    "user_artist_matrix",
    "validate_events",
    "validate_users",
]
