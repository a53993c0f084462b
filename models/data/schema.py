"""Column names of the listening-log and users tables.

Use these constants instead of string literals so a renamed column is a
one-line change.
"""

from __future__ import annotations

__all__ = [
    "ARTIST_ID",
    "COUNTRY",
    "EVENT_COLUMNS",
    "MS_PLAYED",
    "PLAN",
    "SESSION_ID",
    "SIGNUP_DATE",
    "SKIPPED",
    "TIMESTAMP",
    "TRACK_ID",
    "USER_COLUMNS",
    "USER_ID",
]

#: Listening log (one row per play).
USER_ID = "user_id"
TIMESTAMP = "timestamp"
TRACK_ID = "track_id"
ARTIST_ID = "artist_id"
MS_PLAYED = "ms_played"
SKIPPED = "skipped"
SESSION_ID = "session_id"

#: Users table (one row per user).
COUNTRY = "country"
PLAN = "plan"
SIGNUP_DATE = "signup_date"

#: Columns the event log may carry: required first, then optional.
EVENT_COLUMNS = (USER_ID, TIMESTAMP, TRACK_ID, ARTIST_ID, MS_PLAYED, SKIPPED, SESSION_ID)
#: Columns the users table may carry.
USER_COLUMNS = (USER_ID, COUNTRY, PLAN, SIGNUP_DATE)
