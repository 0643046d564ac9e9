"""The audit console over a real recorded interview: auditors only, sessions listed with
their verification, one session's data, its media decrypted on the fly for HTTP Range
requests, and an access log that grows with every look and is itself tamper-evident."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from common.names import Agency
from server.appkeys import STORE, TRAIL
from server.audit_console import seat_segments

from .audit_scene import NOTES, AuditScene, checked, sign_in
from .fakes import World, error_message
from .test_recorder import probe


async def test_only_auditors_sign_in_to_the_console(scene: AuditScene) -> None:
    officer = await scene.world.add_officer("cbsa.snoop", Agency.CBSA)
    client, status = await sign_in(scene, officer)
    assert status == 401
    page = await client.get("/sessions", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login"
    for api in (f"/api/sessions/{scene.interview_id}", "/api/statuses"):
        assert (await client.get(api)).status == 401, api
    _, status = await sign_in(scene, scene.auditor)
    assert status == 303
    actions = [a.action for a in scene.console.app[TRAIL].accesses()]
    assert actions[:2] == ["sign-in-denied", "sign-in"]


async def test_sessions_are_listed_with_their_verification_and_filtered(
    scene: AuditScene,
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    await checked(client)
    listing = await (await client.get("/sessions")).text()
    # closed, but this console was given no witness keys: nobody outside the server vouches
    assert f'data-session="{scene.interview_id}" data-status="incomplete"' in listing
    assert 'id="checking" role="status" hidden' in listing
    assert "Cbsa.Rec (CBSA, CA)" in listing
    assert "referred" in listing
    none = await (await client.get("/sessions?status=failed")).text()
    assert scene.interview_id not in none
    wrong = await client.get("/sessions?status=maybe")
    assert wrong.status == 400


async def test_a_session_s_data_holds_its_verification_timeline_and_decisions(
    scene: AuditScene,
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    data = await (await client.get(f"/api/sessions/{scene.interview_id}")).json()
    assert data["status"] == "incomplete" and data["verification"]["consent"]
    assert data["verification"]["witnessing"]["waiting_for"] == "witness keys"
    kinds = [event["kind"] for event in data["timeline"]]
    # the journal opens with the check-in, then the consent, before anything of the call
    assert kinds[:2] == ["check-in", "consent"] and "join" in kinds and "end" in kinds
    assert not {"segment", "media"} & set(kinds)  # file bookkeeping is not on the timeline
    assert kinds.count("decision") == 2
    assert set(data["seats"]) == {"applicant", "cbsa", "cbp"}
    assert {d["agency"]: d["notes"] for d in data["decisions"]} == {"CBSA": NOTES, "CBP": NOTES}
    assert data["duration"] > 0
    assert all("sha256" not in event and "file" not in event for event in data["timeline"])


async def test_media_is_decrypted_on_the_fly_for_range_requests(
    scene: AuditScene, recorded: tuple[World, dict[str, Path]]
) -> None:
    _, keys = recorded
    client, _ = await sign_in(scene, scene.auditor)
    segment = sorted(scene.session.glob("applicant-*.webm.age"))[0]
    age = shutil.which("age")
    assert age, "the age command is missing: `make test` installs it"
    opened = await asyncio.to_thread(
        subprocess.run,
        [age, "-d", "-i", str(keys["audit"]), str(segment)],
        capture_output=True,
        check=True,
    )
    plain = opened.stdout
    url = f"/media/{scene.interview_id}/{segment.name}"
    head = await client.get(url, headers={"Range": "bytes=0-99"})
    assert head.status == 206
    assert head.headers["Content-Range"] == f"bytes 0-99/{len(plain)}"
    assert await head.read() == plain[:100]
    middle = await client.get(url, headers={"Range": f"bytes={70_000}-{70_009}"})
    assert await middle.read() == plain[70_000:70_010]
    whole = await client.get(url)  # no Range: the whole segment
    assert whole.status == 200 and await whole.read() == plain
    beyond = await client.get(url, headers={"Range": f"bytes={len(plain) + 10}-"})
    assert beyond.status == 416
    for name in ("events.jsonl", "../other/applicant-00001.webm.age", "notes-cbsa.txt.age"):
        refused = await client.get(f"/media/{scene.interview_id}/{name}")
        assert refused.status == 404, name
    assert not list(scene.console.app[TRAIL].directory.parent.rglob("*.webm"))  # no plaintext


async def test_every_look_is_logged_and_the_access_log_is_tamper_evident(
    scene: AuditScene,
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    trail = scene.console.app[TRAIL]
    before = len(trail.accesses(scene.interview_id))
    await client.get(f"/sessions/{scene.interview_id}")
    segment = sorted(scene.session.glob("cbsa-*.webm.age"))[0]
    await client.get(f"/media/{scene.interview_id}/{segment.name}", headers={"Range": "bytes=0-9"})
    looks = trail.accesses(scene.interview_id)
    assert [a.action for a in looks[before:]] == ["open", "play"]
    auditor = await scene.world.store.accounts.by_username(scene.auditor.username)
    assert auditor is not None
    assert {look.auditor for look in looks[before:]} == {auditor.label}
    data = await (await client.get(f"/api/sessions/{scene.interview_id}")).json()
    assert [a["action"] for a in data["accesses"]][-2:] == ["open", "play"]
    assert data["access_log"]["verified"]
    assert trail.check().complete
    events = trail.directory / "events.jsonl"
    events.write_text(events.read_text().replace('"action":"open"', '"action":"list"'))
    assert not trail.check().complete


async def test_a_tampered_session_is_listed_as_failed_with_its_reason(
    scene: AuditScene,
) -> None:
    segment = sorted(scene.session.glob("cbp-*.webm.age"))[0]
    data = bytearray(segment.read_bytes())
    data[-100] ^= 1
    segment.write_bytes(bytes(data))
    client, _ = await sign_in(scene, scene.auditor)
    statuses = await checked(client)
    assert statuses[scene.interview_id] == {
        "status": "failed",
        "problem": f"segment {segment.name} does not match its hash: it was altered or replaced",
    }
    listing = await (await client.get("/sessions?status=failed")).text()
    assert f'data-session="{scene.interview_id}" data-status="failed"' in listing
    assert f"segment {segment.name} does not match its hash" in listing


async def test_a_session_changed_since_its_check_is_listed_as_checking_until_checked_again(
    scene: AuditScene,
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    await checked(client)
    events = scene.session / "events.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    events.write_text("".join([lines[0].replace("}", ', "added": 1}', 1), *lines[1:]]))
    listing = await (await client.get("/sessions?status=verified")).text()
    # Its new status is unknown, so no status filter hides it meanwhile.
    assert f'data-session="{scene.interview_id}" data-status="checking"' in listing
    assert "Still checking 1 of these sessions" in listing
    assert "/static/audit_sessions.js" in listing
    statuses = await checked(client)
    assert statuses[scene.interview_id]["status"] == "failed"
    # The page asks only for the rows it is still filling in; a name that is no session
    # (any more) is left out rather than failing the others.
    asked = f"/api/statuses?id={scene.interview_id}&id=iv_0000000000000000&id=../etc"
    only = (await (await client.get(asked)).json())["statuses"]
    assert list(only) == [scene.interview_id]


async def test_the_console_cannot_write_the_application_store(scene: AuditScene) -> None:
    store = scene.console.app[STORE]
    with pytest.raises(sqlite3.OperationalError, match="readonly database"):
        await store.accounts.set_available(1, True)  # SQLite itself refuses


async def test_an_unknown_session_is_a_clear_404(scene: AuditScene) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    missing = await client.get("/api/sessions/iv_0000000000000000")
    assert missing.status == 404
    assert "no session record" in error_message(await missing.json())


async def test_an_export_downloads_one_participant_and_is_logged(
    scene: AuditScene, tmp_path: Path
) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    response = await client.get(f"/export/{scene.interview_id}/cbsa")
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    download = tmp_path / "cbsa.webm"
    download.write_bytes(await response.read())
    frames = await asyncio.to_thread(probe, download)
    assert frames["vp8"] >= 30 and frames["opus"] >= 30, frames
    assert scene.console.app[TRAIL].accesses(scene.interview_id)[-1].action == "export"
    missing = await client.get(f"/export/{scene.interview_id}/nobody")
    assert missing.status == 404


async def test_the_list_filters_by_date_and_outcome(scene: AuditScene) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    listed = await (await client.get("/sessions?outcome=referred")).text()
    assert scene.interview_id in listed
    assert scene.interview_id not in await (await client.get("/sessions?outcome=approved")).text()
    assert scene.interview_id not in await (await client.get("/sessions?from=2999-01-01")).text()
    assert scene.interview_id in await (await client.get("/sessions?to=2999-01-01")).text()
    bad = await client.get("/sessions?from=yesterday")
    assert bad.status == 400


async def test_an_altered_log_cannot_lead_the_console_outside_the_session(
    scene: AuditScene,
) -> None:
    events = scene.session / "events.jsonl"
    text = events.read_text().replace('"file":"still-001.jpg.age"', '"file":"../../nexus.sqlite3"')
    events.write_text(text)
    client, _ = await sign_in(scene, scene.auditor)
    refused = await client.get(f"/stills/{scene.interview_id}/1")
    assert refused.status == 404
    assert "lists no file" in await refused.text()


async def test_the_console_speaks_french_too(scene: AuditScene) -> None:
    client, _ = await sign_in(scene, scene.auditor)
    page = await (await client.get("/sessions")).text()
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    switched = await client.post(
        "/language",
        data={"csrf_token": token, "language": "fr", "next": "/sessions"},
        allow_redirects=False,
    )
    assert switched.headers["Location"] == "/sessions"
    french = await (await client.get("/sessions")).text()
    assert "Entrevues enregistrées" in french and "vérifiée" in french


def test_a_segment_a_crash_cut_short_lasts_until_the_outage_and_one_unplaced_is_left_out() -> None:
    events: list[dict[str, Any]] = [
        {"kind": "consent", "at": "2026-12-02T10:00:00.000+00:00"},
        {"kind": "segment", "seat": "cbsa", "file": "cbsa-00000.webm.age",
         "started_at_ms": 1_000_000, "duration_ms": 4_000},
        {"kind": "segment", "seat": "cbsa", "file": "cbsa-00001.webm.age",
         "started_at_ms": 1_005_000, "recovered": True},
        {"kind": "segment", "seat": "cbp", "file": "cbp-00001.webm.age", "recovered": True},
        {"kind": "outage", "since": "1970-01-01T00:16:47.500+00:00", "seconds": 3.5,
         "recovered_files": ["cbsa-00001.webm.age", "cbp-00001.webm.age"]},
    ]  # fmt: skip
    seats, origin_ms = seat_segments(events, 0)
    assert origin_ms == 1_000_000
    assert seats == {
        "cbsa": [
            {"file": "cbsa-00000.webm.age", "start": 0.0, "duration": 4.0},
            {"file": "cbsa-00001.webm.age", "start": 5.0, "duration": 2.5},
        ]
    }
