"""The console's counts read the backlog on a connection of their own: while one of them
is under way, the interview server's writes go on (a real SQLite file in WAL mode)."""

from __future__ import annotations

import asyncio

from server.store import Store

from .fakes import add_applications, application


async def test_a_write_goes_on_while_the_consoles_counts_are_being_read(store: Store) -> None:
    await add_applications(store, application("NX-0001"))
    async with store.reports.transaction() as reading:
        rows = list(await reading.execute_fetchall("SELECT count(*) FROM applications"))
        # a write while the count's read transaction is still open
        await asyncio.wait_for(
            store.access_log.append("cbsa.one", "officer", "read", "x", "allowed", "-"), 5
        )
        assert rows[0][0] == 1
    assert len(await store.access_log.entries()) == 1
    assert await store.backlog.states() == {"to_invite": 1}
