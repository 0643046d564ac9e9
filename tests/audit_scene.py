"""A recorded, decided interview (an ID still captured during its call) and an audit console
over it, for the console's tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from common.names import Seat
from recordings.keys import read_identity_file
from recordings.tlog import NoteVerifier
from recordings.witness import cosign_session, generate_cosigner
from recordings.witness_keys import parse_witness_key
from server.appkeys import RECORDS
from server.audit_app import create_audit_app

from .calls import Seated
from .fakes import Account, Client, World, fast_passwords, jpeg_image
from .test_session_records import record_a_call

NOTES = "Travel history checked against the ID still."


@dataclass
class AuditScene:
    world: World
    console: TestServer
    session: Path
    auditor: Account

    @property
    def interview_id(self) -> str:
        return self.session.name

    def url(self, path: str = "/") -> str:
        return str(self.console.make_url(path))


async def capture_still(world: World, interview_id: str, sockets: dict[Seat, Seated]) -> None:
    """CBSA's officer captures an ID still of the applicant, during the call."""
    cbsa = sockets[Seat.CBSA].client
    still = await cbsa.post(
        f"/api/interviews/{interview_id}/stills",
        data=jpeg_image(320, 240),
        headers={"X-CSRF-Token": await world.csrf(cbsa), "Content-Type": "image/jpeg"},
    )
    assert still.status == 201, await still.text()


async def decide_both(world: World, interview_id: str) -> None:
    """Both officers decide, after the call."""
    for client in world.clients:
        info = await (await client.get("/api/session")).json()
        if info["role"] != "officer":
            continue
        code = "US-OTH" if info["label"].endswith("CBP") else "CA-OTH"
        response = await client.post(
            f"/api/interviews/{interview_id}/decision",
            json={"verdict": "refer", "reason_codes": [code], "notes": NOTES},
            headers={"X-CSRF-Token": info["csrf_token"]},
        )
        assert response.status == 201, await response.text()


@asynccontextmanager
async def audit_scene(
    world: World, keys: dict[str, Path], tmp_path: Path, frames: int = 30, witnessed: bool = False
) -> AsyncIterator[AuditScene]:
    """``witnessed``: CBSA's and CBP's witnesses cosign the closed record (offline, as
    `records cosign` does) and the console is given their keys, so it can be complete."""
    session = await record_a_call(world, frames, during=capture_still)
    await decide_both(world, session.name)
    server_key = NoteVerifier.parse(world.server.app[RECORDS].signer.verifier_key)
    witnesses = []
    for agency in ("cbsa", "cbp") if witnessed else ():
        cosigner = generate_cosigner(tmp_path / f"{agency}-witness.key", f"{agency}.test/witness")
        await asyncio.to_thread(cosign_session, session, [server_key], cosigner)
        witnesses.append(parse_witness_key(cosigner.verifier_key))
    auditor = await world.add_auditor("auditor.one")
    settings = world.settings.replace(audit_dir=tmp_path / "audit-console")
    app = create_audit_app(
        settings,
        read_identity_file(keys["audit"]),
        [server_key],
        witnesses,
        clock=world.clock,
        passwords=fast_passwords(),
    )
    console = TestServer(app, host="127.0.0.1")
    await console.start_server()
    try:
        yield AuditScene(world, console, session, auditor)
    finally:
        await console.close()


async def sign_in(scene: AuditScene, account: Account) -> tuple[Client, int]:
    """A browser on the console, after posting the sign-in form; and the answer's status."""
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[scene.url()])
    client: Client = TestClient(scene.console, cookie_jar=jar)
    await client.start_server()
    scene.world.clients.append(client)
    page = await (await client.get("/login")).text()
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    response = await scene.world.sign_in(client, account, csrf=token)
    return client, response.status


async def checked(client: Client, within: float = 30.0) -> dict[str, dict[str, str]]:
    """The sessions' statuses once the background checks have verified every one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        statuses: dict[str, dict[str, str]] = (await (await client.get("/api/statuses")).json())[
            "statuses"
        ]
        if all(s["status"] != "checking" for s in statuses.values()):
            return statuses
        assert loop.time() < deadline, f"still checking after {within} s: {statuses}"
        await asyncio.sleep(0.05)
