"""A burst of anonymous sign-in attempts against the interview server, with password checks
on the event loop (as before) and in the bounded worker (as now), in the same run.

    .venv/bin/python bench/sign_in_flood.py [--attempts 20 200] [--rounds 2]

The server runs in its own process with the production argon2 costs and an address
allowance high enough that one client can send what many addresses would each within
theirs. While the burst runs, a probe asks for ``/healthz`` every 100 ms: its latency is
how long everything else on that loop (the media of every room) waits. Prints, per mode
and burst size: healthz p50 and max, how long the burst took, and its answers. Never
fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from collections import Counter
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from server.app import create_app
from server.auth import Passwords
from server.password_checks import PasswordChecks
from server.settings import load_settings

R = TypeVar("R")


class OnTheLoop(PasswordChecks):
    """The baseline: every check runs where the request is handled, on the event loop."""

    async def _run(self, work: Any, *args: object) -> R:
        result: R = work(*args)
        return result


def serve(mode: str, port: int, data_dir: str, ready: Any) -> None:
    settings = load_settings(
        {},
        {
            "data_dir": data_dir,
            "port": str(port),
            "login_attempts_per_minute": "10000",
            "cookie_secure": "false",
        },
    )
    app = create_app(settings, passwords=Passwords())
    if mode == "inline":
        from server.appkeys import PASSWORD_CHECKS, SIGN_IN

        checks = OnTheLoop(Passwords(), max_pending=1_000_000)
        app[PASSWORD_CHECKS] = checks
        app[SIGN_IN]._checks = checks
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def burst(base: str, attempts: int) -> dict[str, float]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for _ in range(100):
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        async with session.get(f"{base}/api/session") as response:
            csrf = (await response.json())["csrf_token"]
        answers: Counter[int] = Counter()
        latencies: list[float] = []
        done = asyncio.Event()

        async def attempt(n: int) -> None:
            form = {"csrf_token": csrf, "username": f"flood{n}", "password": "x" * 16, "code": "1"}
            async with session.post(f"{base}/login", data=form, allow_redirects=False) as r:
                answers[r.status] += 1

        async def probe() -> None:
            # A session of its own: the burst's connections must not hold the probe up.
            async with aiohttp.ClientSession() as own:
                while not done.is_set():
                    started = time.perf_counter()
                    async with own.get(f"{base}/healthz") as response:
                        await response.read()
                    latencies.append(time.perf_counter() - started)
                    await asyncio.sleep(0.1)

        probing = asyncio.ensure_future(probe())
        started = time.perf_counter()
        await asyncio.gather(*(attempt(n) for n in range(attempts)))
        took = time.perf_counter() - started
        done.set()
        await probing
    return {
        "healthz_p50": statistics.median(latencies),
        "healthz_max": max(latencies),
        "took": took,
        "refused_429": answers[429],
        "checked_401": answers[401],
    }


def run(mode: str, attempts: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        server = context.Process(target=serve, args=(mode, port, data_dir, ready), daemon=True)
        server.start()
        try:
            ready.wait(30)
            return asyncio.run(burst(f"http://127.0.0.1:{port}", attempts))
        finally:
            server.terminate()
            server.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{'mode':8} {'burst':>5} {'healthz p50':>12} {'healthz max':>12} {'took':>7}  answers")
    for _ in range(args.rounds):
        for attempts in args.attempts:
            for mode in ("inline", "pool"):
                r = run(mode, attempts)
                print(
                    f"{mode:8} {attempts:5d} {r['healthz_p50'] * 1000:10.0f}ms"
                    f" {r['healthz_max'] * 1000:10.0f}ms {r['took']:6.1f}s"
                    f"  401 x{r['checked_401']:.0f}, 429 x{r['refused_429']:.0f}"
                )


if __name__ == "__main__":
    main()
