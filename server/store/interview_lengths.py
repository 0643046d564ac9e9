"""How long recent interviews' calls lasted, read from the interview events: the waiting
room's estimates follow them."""

from __future__ import annotations

from datetime import datetime

from .database import Database

# For each of the latest ``end`` events an officer gave (``by``), the first ``join`` of
# that interview since its previous ``end``: a two-step interview's steps are two calls.
_RECENT_CALLS = """
SELECT e.at, (
    SELECT j.at FROM interview_events j
    WHERE j.interview_id = e.interview_id AND j.kind = 'join' AND j.id < e.id
      AND j.id > coalesce((
          SELECT max(p.id) FROM interview_events p
          WHERE p.interview_id = e.interview_id AND p.kind = 'end' AND p.id < e.id), 0)
    ORDER BY j.id LIMIT 1)
FROM interview_events e
WHERE e.kind = 'end' AND json_extract(e.detail, '$.by') IS NOT NULL
ORDER BY e.id DESC LIMIT ?
"""


async def recent_interview_seconds(database: Database, limit: int) -> list[float]:
    """The lengths, in seconds, of the latest ``limit`` calls an officer ended, newest
    first (a call nobody joined is left out)."""
    async with database.transaction() as db:
        rows = list(await db.execute_fetchall(_RECENT_CALLS, (limit,)))
    lengths = []
    for ended, started in rows:
        if started is None:
            continue
        call = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
        if call.total_seconds() > 0:
            lengths.append(call.total_seconds())
    return lengths
