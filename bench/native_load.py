"""N three-party interviews through a real server, played by the native load generator.

    .venv/bin/python bench/native_load.py [--rooms 1 4] [--seconds 20] [--loadgen PATH]

For each room count: a fresh server (`nexus-interview serve`, its own data directory,
127.0.0.1 on a free port, media from any address) with N applications, N invitations and
2N officers stored before it starts; then every participant signs in over HTTP as a
browser does, from its own loopback address (127.0.0.2 upwards) so the per-address
sign-in throttle sees one person per address: the applicant opens the link, confirms the
date of birth, consents and enters the waiting room; each officer signs in with password
and TOTP and takes the interview, which starts the call. The session cookies go to
`bench/loadgen` (build it with ``make loadgen``), which joins, publishes and counts
everything by content, and prints per track fps, join-to-first-frame, loss, delay and its
own CPU. This driver adds the server's CPU over the same window. With ``--record`` the
server records every call; ``--profile FILE`` writes the generator's CPU profile (read it
with ``go tool pprof``). ``--compare-aiortc`` runs, in the same invocation and for each
room count, `bench/interviews.py`'s aiortc clients on its ``forward`` server and prints
both generators' CPU per participant and their ratio. Never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import argon2
import pyotp
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.names import Agency, Seat
from common.secret import Secret
from media.address_policy import EVERY_NETWORK
from recordings.keys import Identity
from server import operator
from server.auth import Passwords
from server.importer import ApplicationRow
from server.settings import Settings, load_settings
from server.store import Store
from server.types import InterviewMode, utc_now
from server.views.applicant import CONSENT_VERSION
from tests.fakes import application

# Imported as a module of its directory, as `python bench/interviews.py` runs it: its
# clients and servers run in processes spawned from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import generator_run
import interviews
from generator_run import LOADGEN, ROOT, Measurement

DATE_OF_BIRTH = "1980-05-17"  # tests.fakes.application's


@dataclass
class Room:
    interview_id: str
    token: str
    officers: dict[Seat, tuple[str, Secret[str], Secret[str]]]  # username, password, TOTP


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def address(room: int, seat: Seat) -> str:
    """Each participant's own loopback address: 127.0.0.2 upwards."""
    n = 2 + 3 * room + list(Seat).index(seat)
    return f"127.0.{n // 256}.{n % 256}"


async def prepare(settings: Settings, rooms: int) -> list[Room]:
    """Applications, invitations and officers, stored before the server starts."""
    # The cheapest argon2id parameters: the hash carries them, so the server checks it.
    passwords = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    store = await Store(settings.database_path, settings=settings).open()
    try:
        rows: list[ApplicationRow] = [application(f"NX-{n + 1:04d}") for n in range(rooms)]
        await store.applications.import_rows([(r.id, r.values()) for r in rows], actor="bench")
        prepared = []
        for n, row in enumerate(rows):
            invitation = await operator.invite(
                store, settings, row.id, InterviewMode.JOINT, utc_now() - timedelta(minutes=1), 8
            )
            officers = {}
            for agency in Agency:
                username = f"{agency.value.lower()}.bench{n}"
                password = Secret(f"{username}-password-long")
                enrolment = await operator.add_officer(
                    store, passwords, username, username.title(), agency, None, password
                )
                officers[Seat.of(agency)] = (username, password, enrolment.totp_secret)
            token = invitation.link.reveal().rsplit("/", 1)[1]
            prepared.append(Room(invitation.interview_id, token, officers))
    finally:
        await store.close()
    return prepared


def browser(url: str, local_address: str) -> aiohttp.ClientSession:
    """A browser on this machine: the session cookie is Secure, which browsers keep for
    http://127.0.0.1 too."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(local_address, 0)),
        cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[url]),
    )


async def csrf(client: aiohttp.ClientSession, url: str) -> str:
    async with client.get(f"{url}/api/session") as response:
        return str((await response.json())["csrf_token"])


def cookie(client: aiohttp.ClientSession, url: str) -> str:
    return f"nexus_session={client.cookie_jar.filter_cookies(URL(url))['nexus_session'].value}"


async def check(response: aiohttp.ClientResponse, status: int, what: str) -> None:
    if response.status != status:
        raise SystemExit(f"{what}: HTTP {response.status}: {await response.text()}")


async def seat_room(
    url: str, n: int, room: Room, keep: list[aiohttp.ClientSession]
) -> list[dict[str, object]]:
    """Sign the three in and start the call; the applicant's waiting-room socket stays
    open (in ``keep``) for the run, as the page's would."""
    applicant = browser(url, address(n, Seat.APPLICANT))
    keep.append(applicant)
    form = {"csrf_token": await csrf(applicant, url), "date_of_birth": DATE_OF_BIRTH}
    async with applicant.post(f"{url}/i/{room.token}", data=form, allow_redirects=False) as r:
        await check(r, 303, "date of birth")
    headers = {"X-CSRF-Token": await csrf(applicant, url)}
    consent = {"text_version": CONSENT_VERSION, "language": "en"}
    async with applicant.post(f"{url}/api/applicant/consent", json=consent, headers=headers) as r:
        await check(r, 201, "consent")
    ws = await applicant.ws_connect(f"{url}/ws", headers={"Origin": url})
    await ws.send_json({"v": 1, "type": "ready", "interview_id": room.interview_id})
    cookies = {Seat.APPLICANT: cookie(applicant, url)}
    for seat, (username, password, totp) in room.officers.items():
        officer = browser(url, address(n, seat))
        keep.append(officer)
        form = {
            "csrf_token": await csrf(officer, url),
            "username": username,
            "password": password.reveal(),
            "code": pyotp.TOTP(totp.reveal()).now(),
        }
        async with officer.post(f"{url}/login", data=form, allow_redirects=False) as r:
            await check(r, 303, f"{username} signing in")
        headers = {"X-CSRF-Token": await csrf(officer, url)}
        async with officer.post(
            f"{url}/api/interviews/{room.interview_id}/take", headers=headers
        ) as r:
            await check(r, 200, f"{username} taking the interview")
        cookies[seat] = cookie(officer, url)
    while (await ws.receive_json(timeout=20))["type"] != "paired":
        pass
    return [
        {
            "room": n,
            "seat": seat.value,
            "interview_id": room.interview_id,
            "cookie": cookies[seat],
            "local_addr": address(n, seat),
        }
        for seat in Seat
    ]


def wait_until_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start listening within 30 s")


@dataclass(frozen=True)
class Served(Measurement):
    stopped: bool = True  # the server stopped by itself within `STOP_SECONDS` of SIGTERM


STOP_SECONDS = 30


async def drive(
    url: str, prepared: list[Room], server_pid: int, seconds: float, options: list[str]
) -> Measurement:
    """Seat everyone (their pages' sessions stay open meanwhile, as browsers' would) and
    run the generator with ``options``."""
    keep: list[aiohttp.ClientSession] = []
    try:
        participants = []
        for n, room in enumerate(prepared):
            participants += await seat_room(url, n, room, keep)
        config = {"server": url, "seconds": seconds, "warmup": 3, "participants": participants}
        loadgen, *rest = options
        return await asyncio.to_thread(generator_run.run, config, server_pid, Path(loadgen), rest)
    finally:
        for client in keep:
            await client.close()


def measure(
    rooms: int,
    seconds: float,
    record: bool = False,
    loadgen: Path = LOADGEN,
    profile: Path | None = None,
    media_workers: int | None = None,
) -> Served:
    """``rooms`` interviews on a fresh server through the generator. ``record``: the
    server records every call (to recipients whose identities are thrown away), as a
    deployment does; otherwise it only forwards. ``media_workers``: the server's media
    worker processes (0: media in its own process; None: its default, one per core). The
    server is then stopped as an operator would (SIGTERM), and killed if it does not stop
    within `STOP_SECONDS`."""
    with tempfile.TemporaryDirectory(prefix="native-load-") as directory:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "NEXUS_DATA_DIR": str(Path(directory) / "data"),
            "NEXUS_HOST": "127.0.0.1",
            "NEXUS_PORT": str(port),
            "NEXUS_PUBLIC_URL": url,
            "NEXUS_MEDIA_PEER_NETWORKS": EVERY_NETWORK,
            "NEXUS_LOG_LEVEL": "WARNING",
        }
        if media_workers is not None:
            env["NEXUS_MEDIA_WORKERS"] = str(media_workers)
        if record:
            for holder in ("CBSA", "CBP", "AUDIT"):
                env[f"NEXUS_{holder}_RECIPIENT"] = str(Identity.generate().recipient)
        prepared = asyncio.run(prepare(load_settings(env), rooms))
        command = "import sys; from server.cli import main; sys.exit(main())"
        server = subprocess.Popen([sys.executable, "-c", command, "serve"], env=env, cwd=ROOT)
        try:
            wait_until_listening(port, server)
            options = [str(loadgen)]
            if profile:
                options += ["-cpuprofile", str(profile.resolve())]
            measured = asyncio.run(drive(url, prepared, server.pid, seconds, options))
        finally:
            server.terminate()
            try:
                server.wait(STOP_SECONDS)
                stopped = True
            except subprocess.TimeoutExpired:
                print(f"the server did not stop within {STOP_SECONDS} s of SIGTERM: killed")
                server.kill()
                server.wait()
                stopped = False
        return Served(**vars(measured), stopped=stopped)


# Below this the aiortc clients were starved (by the machine, not the server): they then
# handle fewer packets and their CPU understates what they cost.
STARVED_FPS = 28.0


def aiortc_clients(rooms: int, seconds: float, clip: interviews.Clip) -> float:
    """CPU-s/s per participant of `bench/interviews.py`'s aiortc clients (their own
    processes) on the same number of rooms through its forwarding server; nan when not
    every forwarded track arrived at STARVED_FPS or more."""
    figures = interviews.run("forward", rooms, seconds, clip)
    print(
        f"aiortc clients: video fps min {figures['fps_min']:.1f} "
        f"median {figures['fps_median']:.1f}, "
        f"{figures['clients']:.3f} CPU-s/s for {3 * rooms} participants",
        flush=True,
    )
    if figures["fps_min"] < STARVED_FPS:  # 0 when a track is missing
        print(
            f"aiortc clients: not every forwarded video track held {STARVED_FPS:.0f} fps; "
            "no comparison for this room count",
            flush=True,
        )
        return math.nan
    return float(figures["clients"]) / (3 * rooms)


def ratio(native: float, aiortc: float) -> str:
    return "-" if math.isnan(aiortc) else f"{aiortc / native:.1f}x"


def compare(rooms: int, native: float, aiortc: float) -> None:
    print(
        f"generators, {rooms} room(s): aiortc clients {aiortc:.4f} CPU-s/s per participant, "
        f"loadgen {native:.4f}, aiortc/loadgen = {ratio(native, aiortc)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loadgen", type=Path, default=LOADGEN, help="the built generator")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write the generator's CPU profile here (FILE-<N>rooms for several room counts)",
    )
    parser.add_argument("--record", action="store_true", help="the server records the calls")
    parser.add_argument(
        "--compare-aiortc",
        action="store_true",
        help="also run bench/interviews.py's aiortc clients on as many rooms, and compare",
    )
    args = parser.parse_args()
    if not args.loadgen.exists():
        parser.error(f"{args.loadgen} is missing: build it with `make loadgen`")
    clip = interviews.encode_clip() if args.compare_aiortc else None
    table = []
    for rooms in args.rooms:
        mode = "recorded" if args.record else "forwarded"
        print(f"== {rooms} {mode} room(s), {args.seconds:.0f} s", flush=True)
        profile = args.profile
        if profile is not None and len(args.rooms) > 1:  # one profile per room count
            profile = profile.with_name(f"{profile.stem}-{rooms}rooms{profile.suffix}")
        report = measure(rooms, args.seconds, args.record, args.loadgen, profile).report
        if clip is None:
            continue
        native = float(report.get("cpu_per_second_per_participant", math.nan))
        print(f"== {rooms} room(s), bench/interviews.py aiortc clients", flush=True)
        aiortc = aiortc_clients(rooms, args.seconds, clip)
        compare(rooms, native, aiortc)
        table.append((rooms, native, aiortc))
    if table:
        print(f"{'rooms':>5} {'aiortc/participant':>18} {'loadgen/participant':>19} {'ratio':>6}")
        for rooms, native, aiortc in table:
            print(f"{rooms:>5} {aiortc:>18.4f} {native:>19.4f} {ratio(native, aiortc):>6}")


if __name__ == "__main__":
    main()
