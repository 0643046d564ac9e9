"""`nexus-interview demo` as a person runs it: the printed sign-ins and links work."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pyotp
import pytest
from yarl import URL

from recordings.closed_sessions import closed_sessions_origin
from recordings.session_record import SessionLog
from recordings.witness import read_cosigner
from server.session_records import checkpoint_signer

from .served import free_port

EXE = Path(sys.executable).with_name("nexus-interview")


class Demo:
    def __init__(self, cwd: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(EXE), "demo", "--port", str(self.port)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = self._read_until("press Ctrl-C to stop")
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_until_listening()

    def _read_until(self, marker: str) -> str:
        assert self.process.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if marker in line:
                return "".join(lines)
        raise AssertionError("the demo did not start:\n" + "".join(lines))

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the demo server never listened")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=20)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    if running.process.poll() is None:
        running.stop()


def sign_ins(output: str) -> dict[str, tuple[str, str]]:
    found = re.findall(r"^\s+(\S+)\s+.*?password (\S+)\s+TOTP secret ([A-Z2-7]+)", output, re.M)
    return {user: (password, secret) for user, password, secret in found}


def links(output: str) -> list[tuple[str, str]]:
    """(date of birth, link) of each applicant shown."""
    return re.findall(r"born (\d{4}-\d\d-\d\d), \w+\n\s+(http://\S+/i/[\w-]{43})\n", output)


def client(url: str) -> aiohttp.ClientSession:
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[URL(url)])
    return aiohttp.ClientSession(url, cookie_jar=jar)


async def csrf(session: aiohttp.ClientSession) -> str:
    token: str = (await (await session.get("/api/session")).json())["csrf_token"]
    return token


async def test_demo_prints_working_sign_ins_and_applicant_links(demo: Demo, tmp_path: Path) -> None:
    accounts = sign_ins(demo.output)
    assert set(accounts) == {
        "cbsa.officer1",
        "cbsa.officer2",
        "cbp.officer1",
        "cbp.officer2",
        "auditor1",
        "operator1",
    }
    assert "DEMO ONLY" in demo.output
    shown = links(demo.output)
    assert len(shown) >= 3

    homes = (("cbsa.officer1", "/officer"), ("auditor1", "/audit"), ("operator1", "/operator"))
    for username, home in homes:
        password, secret = accounts[username]
        async with client(demo.url) as session:
            response = await session.post(
                "/login",
                allow_redirects=False,
                data={
                    "csrf_token": await csrf(session),
                    "username": username,
                    "password": password,
                    "code": pyotp.TOTP(secret).now(),
                },
            )
            assert response.status == 303 and response.headers["Location"] == home
            assert (await session.get(home)).status == 200

    dob, link = shown[0]
    async with client(demo.url) as session:
        path = URL(link).path
        assert (await session.get(path)).status == 200
        response = await session.post(
            path, data={"csrf_token": await csrf(session), "date_of_birth": dob}
        )
        assert response.status == 200 and response.url.path == "/interview"
        info = await (await session.get("/api/applicant/interview")).json()
        assert info["next"] == "wait" and not info["consented"]

    async with client(demo.url) as session:  # the officer sees those interviews queued
        password, secret = accounts["cbp.officer1"]
        await session.post(
            "/login",
            data={
                "csrf_token": await csrf(session),
                "username": "cbp.officer1",
                "password": password,
                "code": pyotp.TOTP(secret).now(),
            },
        )
        queue = await (await session.get("/api/officer/queue")).json()
        assert len(queue["interviews"]) >= 3

    assert demo.stop() == 0


def test_demo_keeps_private_identities_out_of_the_server_data_directory(
    demo: Demo, tmp_path: Path
) -> None:
    root = tmp_path / "demo-data"
    identities = sorted(p.name for p in (root / "identities").iterdir())
    assert identities == ["audit-identity.txt", "cbp-identity.txt", "cbsa-identity.txt"]
    for path in (root / "server").rglob("*"):
        if path.is_file():
            assert b"AGE-SECRET-KEY-" not in path.read_bytes(), path


def test_a_second_run_reuses_the_accounts_and_issues_fresh_links(tmp_path: Path) -> None:
    first = Demo(tmp_path)
    first.stop()
    second = Demo(tmp_path)
    try:
        assert sign_ins(second.output) == sign_ins(first.output)
        assert set(links(second.output)).isdisjoint(links(first.output))
    finally:
        second.stop()


async def test_the_demo_runs_both_agencies_witnesses_and_stops_them(demo: Demo) -> None:
    witnesses = dict(re.findall(r"^(CBSA|CBP) witness .*?: (http://\S+)$", demo.output, re.M))
    assert set(witnesses) == {"CBSA", "CBP"}
    async with aiohttp.ClientSession() as http:
        for url in witnesses.values():
            # A witness of its own, speaking tlog-witness: an empty submission is refused.
            async with http.post(f"{url}/add-checkpoint", data=b"") as answer:
                assert answer.status == 400, await answer.text()
    assert demo.stop() == 0
    for url in witnesses.values():
        port = URL(url).port
        assert port is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_the_demo_witnesses_cosign_the_servers_closed_sessions_log_and_no_other_log(
    demo: Demo, tmp_path: Path
) -> None:
    witnesses = dict(re.findall(r"^(CBSA|CBP) witness .*?: (http://\S+)$", demo.output, re.M))
    served = re.search(r"^Serving on (http://\S+) ", demo.output, re.M)
    assert served is not None
    log_name = URL(served[1]).raw_authority
    signer = checkpoint_signer(tmp_path / "demo-data" / "server" / "checkpoint-signing.pem")
    logs: dict[str, SessionLog] = {}
    for origin in (closed_sessions_origin(log_name), "elsewhere.test/closed-sessions"):
        log = logs[origin] = SessionLog(tmp_path / "logs" / str(len(logs)), origin, signer)
        log.append("closed", interview="iv_1")
        log.checkpoint()
    async with aiohttp.ClientSession() as http:
        for url in witnesses.values():
            answers = []
            for log in logs.values():
                note = (log.directory / "checkpoints" / f"{1:010d}.note").read_bytes()
                async with http.post(f"{url}/add-checkpoint", data=b"old 0\n\n" + note) as answer:
                    answers.append(answer.status)
            assert answers == [200, 404]


def test_the_demo_prints_verify_and_console_commands_with_both_witnesses_keys(
    demo: Demo, tmp_path: Path
) -> None:
    """Without the witnesses' keys no record is complete: the commands the demo prints
    carry the keys of the witnesses it runs."""
    keys = [
        read_cosigner(tmp_path / "demo-data" / "witnesses" / f"{agency}.key").verifier_key
        for agency in ("cbsa", "cbp")
    ]
    lines = demo.output.splitlines()
    commands = [line for line in lines if "records verify" in line or "audit-console" in line]
    assert len(commands) == 2
    for command in commands:
        assert re.findall(r"--witness '([^']+)'", command) == keys


async def test_every_seeded_application_gets_a_working_link_listed_in_a_private_file(
    demo: Demo, tmp_path: Path
) -> None:
    listed = tmp_path / "demo-data" / "applicant-links.txt"
    assert "All 20 applicants' links: demo-data/applicant-links.txt" in demo.output
    assert listed.stat().st_mode & 0o777 == 0o600  # each link lets its applicant in
    every = links(listed.read_text("utf-8"))
    assert len(every) == 20
    assert set(links(demo.output)) <= set(every)
    async with client(demo.url) as session:
        for _, link in every:
            assert (await session.get(URL(link).path)).status == 200, link


def test_the_demo_prints_commands_as_they_run_from_the_repository(demo: Demo) -> None:
    """`make` puts nothing on the PATH: a printed command names the venv's script."""
    named = re.findall(r"(\S*)nexus-interview ", demo.output)
    assert len(named) >= 3  # records verify, export, invitations list
    assert set(named) <= {".venv/bin/", "`.venv/bin/"}, named
    assert (Path(__file__).parents[1] / ".venv" / "bin" / "nexus-interview").exists()
