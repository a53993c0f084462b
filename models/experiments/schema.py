"""Column names of the tables of an experiment.

The event log is the one of :mod:`models.data.schema` (``user_id``,
``timestamp``, ``ms_played``, ...). An experiment adds the **assignment
table**, one row per user (per experiment) saying which variant the user was
given and when:

- ``user_id``: the same ids as the event log;
- ``variant``: name of the arm (a string such as ``"control"``);
- ``assigned_at``: time of the assignment, tz-naive ``datetime64[ns]`` read as
  UTC, like ``timestamp``;
- ``experiment_id`` (optional): several experiments in one table; a user is
  then unique per ``(experiment_id, user_id)``.

Any other column (``country``, ``plan``, ...) is a user attribute that passes
through to the per-user metrics, where it can define segments.
"""

from __future__ import annotations

from models.data.schema import USER_ID

__all__ = [
    "ASSIGNED_AT",
    "ASSIGNMENT_COLUMNS",
    "EXPERIMENT_ID",
    "REQUIRED_ASSIGNMENT_COLUMNS",
    "USER_ID",
    "VARIANT",
]

#: Name of the arm a user was assigned to.
VARIANT = "variant"
#: Time of the assignment (tz-naive, UTC).
ASSIGNED_AT = "assigned_at"
#: Optional id of the experiment, for tables holding several experiments.
EXPERIMENT_ID = "experiment_id"

#: Columns every assignment table needs.
REQUIRED_ASSIGNMENT_COLUMNS = (USER_ID, VARIANT, ASSIGNED_AT)
#: Columns with a meaning in an assignment table: required first, then optional.
ASSIGNMENT_COLUMNS = (*REQUIRED_ASSIGNMENT_COLUMNS, EXPERIMENT_ID)
