"""The operator's console on the real backlog's size (490,000 applications), against the
same console on a small backlog (the baseline): how long the page and each figure take,
and how long a small write made meanwhile (an access-log line, as every request of an
interview makes) waits behind them on the one database connection.

    .venv/bin/python bench/operator_console.py [--rows 490000] [--baseline-rows 10000]

Each backlog is imported through the CLI (`applications import`); a tenth of it is then
written as interviewed and decided by both agencies over the last fortnight (straight into
SQLite: history for the console to count, not a measure of anything), with a join and an
end event each. The console is served in-process (`create_app`) and read by a signed-in
operator. Prints medians of five reads. Never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from import_applications import synthetic_rows, write  # beside this file

from common.names import Agency
from common.secret import Secret
from server import operator
from server.app import create_app
from server.appkeys import STORE
from server.settings import Settings, load_settings
from server.store import Store
from server.types import iso
from tests.fakes import fast_passwords

FIGURES = ("backlog", "decisions-per-hour", "burndown", "staffing", "officers", "invitations")
READS = 5
OFFICERS_PER_AGENCY = 20


def imported(rows: int, scratch: Path) -> Settings:
    path = scratch / "applications.csv"
    write(path, synthetic_rows(rows))
    data = scratch / "data"
    command = [sys.executable, "-m", "server.cli", "--data-dir", str(data)]
    done = subprocess.run(
        [*command, "applications", "import", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"import failed: {done.stderr}")
    return load_settings(
        {}, {"data_dir": str(data), "cookie_secure": "false", "media_workers": "0"}
    )


async def decided_history(settings: Settings, share: float) -> int:
    """A tenth (``share``) of the applications interviewed and decided by both agencies,
    spread over the last 14 days; how many."""
    store = await Store(settings.database_path, settings=settings).open()
    try:
        officers: dict[Agency, list[int]] = {}
        for agency in Agency:
            officers[agency] = [
                await store.accounts.add_officer(
                    f"{agency.value.lower()}{n}",
                    f"{agency.value} officer {n}",
                    agency,
                    agency.home_country,
                    "x",
                    Secret("JBSWY3DPEHPK3PXP"),
                )
                for n in range(OFFICERS_PER_AGENCY)
            ]
        now = datetime.now(UTC)
        async with store.database.transaction() as db:
            ids = [row[0] for row in await db.execute_fetchall("SELECT id FROM applications")]
            chosen = ids[: int(len(ids) * share)]
            for n, application_id in enumerate(chosen):
                at = now - timedelta(minutes=(n * 14 * 24 * 60) // max(1, len(chosen)))
                interview_id = f"iv_{n:016x}"
                cbsa = officers[Agency.CBSA][n % OFFICERS_PER_AGENCY]
                cbp = officers[Agency.CBP][n % OFFICERS_PER_AGENCY]
                await db.execute(
                    "INSERT INTO interviews (id, application_id, mode, window_start,"
                    " window_end, token_hash, state, phase, cbsa_officer_id, cbp_officer_id,"
                    " created_at, updated_at) VALUES (?, ?, 'joint', ?, ?, ?, 'completed',"
                    " 'closed', ?, ?, ?, ?)",
                    (
                        interview_id,
                        application_id,
                        iso(at - timedelta(minutes=30)),
                        iso(at),
                        n.to_bytes(32, "big"),
                        cbsa,
                        cbp,
                        iso(at - timedelta(days=1)),
                        iso(at),
                    ),
                )
                for kind, moment in (("join", at - timedelta(minutes=20)), ("end", at)):
                    await db.execute(
                        "INSERT INTO interview_events (interview_id, at, kind, seat, detail)"
                        " VALUES (?, ?, ?, 'cbsa', '{\"by\": \"cbsa\"}')",
                        (interview_id, iso(moment), kind),
                    )
                for agency, officer_id in ((Agency.CBSA, cbsa), (Agency.CBP, cbp)):
                    await db.execute(
                        "INSERT INTO decisions VALUES (?, ?, 'approve', '[]', '', ?, ?)",
                        (interview_id, agency, officer_id, iso(at)),
                    )
                await db.execute(
                    "UPDATE applications SET status = 'approved' WHERE id = ?", (application_id,)
                )
                await db.execute(
                    "INSERT INTO application_status_history (application_id, from_status,"
                    " to_status, reason, actor, at) VALUES (?, 'scheduled', 'approved',"
                    " 'both agencies decided', 'bench', ?)",
                    (application_id, iso(at)),
                )
        return len(chosen)
    finally:
        await store.close()


async def median_seconds(read: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(READS):
        started = time.perf_counter()
        await read()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def console_figures(settings: Settings) -> dict[str, float]:
    passwords = fast_passwords()
    server = TestServer(create_app(settings, passwords=passwords), host="127.0.0.1")
    await server.start_server()
    client = TestClient(server)
    await client.start_server()
    try:
        store: Store = server.app[STORE]
        password = Secret("operator-password-long")
        enrolment = await operator.add_operator(
            store, passwords, "operator.one", "Operator", password
        )
        csrf = (await (await client.get("/api/session")).json())["csrf_token"]
        signed_in = await client.post(
            "/login",
            data={
                "csrf_token": csrf,
                "username": "operator.one",
                "password": password.reveal(),
                "code": pyotp.TOTP(enrolment.totp_secret.reveal()).now(),
            },
            allow_redirects=False,
        )
        assert signed_in.status == 303, await signed_in.text()

        async def page() -> None:
            response = await client.get("/operator")
            assert response.status == 200, await response.text()
            await response.read()

        figures = {"page": await median_seconds(page)}
        for name in FIGURES:

            async def figure(name: str = name) -> None:
                response = await client.get(f"/operator/figures/{name}.csv")
                assert response.status == 200, await response.text()
                await response.read()

            figures[name] = await median_seconds(figure)

        async def write_during_page() -> float:
            reading = asyncio.ensure_future(page())
            await asyncio.sleep(0.005)  # the page's reads are under way
            started = time.perf_counter()
            await store.access_log.append("bench", "officer", "read", "x", "allowed", "-")
            waited = time.perf_counter() - started
            await reading
            return waited

        waits = [await write_during_page() for _ in range(READS)]
        figures["a write waits"] = statistics.median(waits)
        return figures
    finally:
        await client.close()
        await server.close()


async def measure(rows: int) -> tuple[int, dict[str, float]]:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        settings = imported(rows, Path(scratch))
        decided = await decided_history(settings, 0.1)
        print(f"  {rows:,} applications, {decided:,} decided: set up in ", end="")
        print(f"{time.perf_counter() - started:.0f} s", flush=True)
        return decided, await console_figures(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=490_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    args = parser.parse_args()
    print("operator console, median of five reads")
    _, baseline = asyncio.run(measure(args.baseline_rows))
    _, full = asyncio.run(measure(args.rows))
    print(f"  {'':>20} {args.baseline_rows:>10,} {args.rows:>10,}   ratio")
    for name, seconds in full.items():
        small = baseline[name]
        ratio = seconds / small if small else float("inf")
        print(f"  {name:>20} {small * 1000:8.1f} ms {seconds * 1000:8.1f} ms {ratio:6.1f}x")


if __name__ == "__main__":
    main()
