"""The operator's CLI, run as the real `nexus-interview` command."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.settings import SETTINGS

from .fakes import nexus_interview
from .test_importer import GOOD, RENEWAL, write_csv


def run(
    data_dir: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return nexus_interview("--data-dir", str(data_dir), *args, stdin=stdin, env=env)


def test_settings_prints_every_setting(tmp_path: Path) -> None:
    done = run(tmp_path, "settings", env={"NEXUS_PORT": "9123"})
    assert done.returncode == 0, done.stderr
    for setting in SETTINGS:
        assert setting.env in done.stdout
    assert "9123" in done.stdout


def test_a_bad_setting_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    done = run(tmp_path, "settings", env={"NEXUS_PORT": "eighty"})
    assert done.returncode == 1
    assert "NEXUS_PORT 'eighty' is not valid: expected a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_settings_flags_work_after_the_command_too(tmp_path: Path) -> None:
    done = nexus_interview("settings", "--port", "9555")
    assert done.returncode == 0 and "9555" in done.stdout


def test_import_reports_counts_and_is_idempotent(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "apps.csv", [GOOD, RENEWAL])
    first = run(tmp_path / "data", "applications", "import", str(path))
    assert first.returncode == 0, first.stderr
    assert "2 new, 0 updated, 0 unchanged" in first.stdout
    again = run(tmp_path / "data", "applications", "import", str(path))
    assert "0 new, 0 updated, 2 unchanged" in again.stdout


def test_import_of_a_bad_file_lists_every_bad_line_and_imports_nothing(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "apps.csv",
        [GOOD, {**GOOD, "id": "NX-2", "program": "X"}, {**RENEWAL, "card_expiry": ""}],
    )
    done = run(tmp_path / "data", "applications", "import", str(path))
    assert done.returncode == 1
    assert "nothing was imported: 2 bad row(s)" in done.stderr
    assert re.search(r"line 3: .*id", done.stderr) and "line 4: a renewal needs" in done.stderr
    good = write_csv(tmp_path / "good.csv", [GOOD])
    assert "1 new" in run(tmp_path / "data", "applications", "import", str(good)).stdout


def test_officer_enrolment_prints_the_otpauth_uri_and_a_qr_code(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        "officers",
        "add",
        "--username",
        "jane.doe",
        "--name",
        "Jane Doe",
        "--agency",
        "cbp",
        "--password-stdin",
        stdin="a-long-password-1\n",
    )
    assert done.returncode == 0, done.stderr
    assert "otpauth://totp/NEXUS%20interview:jane.doe?secret=" in done.stdout
    assert "█" in done.stdout or "▀" in done.stdout  # the terminal QR code
    assert "a-long-password-1" not in done.stdout + done.stderr
    duplicate = run(
        tmp_path,
        "officers",
        "add",
        "--username",
        "Jane.Doe",
        "--name",
        "J",
        "--agency",
        "CBSA",
        "--password-stdin",
        stdin="a-long-password-1\n",
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


def test_enrolment_without_a_terminal_needs_password_stdin(tmp_path: Path) -> None:
    done = run(tmp_path, "auditors", "add", "--username", "aud", "--name", "A")
    assert done.returncode == 1
    assert "use --password-stdin" in done.stderr


def test_a_short_password_is_refused(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        "auditors",
        "add",
        "--username",
        "aud",
        "--name",
        "A",
        "--password-stdin",
        stdin="short\n",
    )
    assert done.returncode == 1
    assert "at least 12 characters" in done.stderr


def test_invite_prints_a_link_with_a_256_bit_token(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "apps.csv", [GOOD])
    run(tmp_path / "d", "applications", "import", str(path))
    done = run(
        tmp_path / "d",
        "--public-url",
        "https://interview.example",
        "invite",
        "NX-0001",
        "--mode",
        "two_step",
        "--starts",
        "2030-01-01T14:00Z",
        "--hours",
        "4",
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^https://interview\.example/i/[A-Za-z0-9_-]{43}$", done.stdout, re.M)
    assert "2030-01-01 14:00 UTC to 2030-01-01 18:00 UTC" in done.stdout
    unknown = run(tmp_path / "d", "invite", "NX-9999")
    assert unknown.returncode == 1 and "no application with id 'NX-9999'" in unknown.stderr
    naive = run(tmp_path / "d", "invite", "NX-0001", "--starts", "2030-01-01T14:00")
    assert naive.returncode == 2 and "needs a time zone" in naive.stderr


def test_invite_refuses_a_window_that_has_already_ended(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "apps.csv", [GOOD])
    run(tmp_path / "d", "applications", "import", str(path))
    starts = (datetime.now(UTC) - timedelta(hours=5)).isoformat(timespec="minutes")
    done = run(tmp_path / "d", "invite", "NX-0001", "--starts", starts, "--hours", "4")
    assert done.returncode == 1
    assert "that window ended at" in done.stderr
    assert "give a later --starts" in done.stderr
    assert "http" not in done.stdout  # no link was made


def test_invite_warns_of_a_window_that_started_in_the_past_but_is_still_open(
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "apps.csv", [GOOD])
    run(tmp_path / "d", "applications", "import", str(path))
    starts = (datetime.now(UTC) - timedelta(hours=2)).isoformat(timespec="minutes")
    done = run(tmp_path / "d", "invite", "NX-0001", "--starts", starts, "--hours", "4")
    assert done.returncode == 0, done.stderr
    assert "warning: this window started in the past" in done.stderr
    assert re.search(r"/i/[A-Za-z0-9_-]{43}$", done.stdout, re.M)
    now = run(tmp_path / "d", "invite", "NX-0001")  # from now: nothing to warn of
    assert now.returncode == 0 and "warning" not in now.stderr, now.stderr


@pytest.mark.parametrize("holder", ["cbsa", "audit"])
def test_keys_generate_writes_an_identity_the_age_tool_reads(tmp_path: Path, holder: str) -> None:
    out = tmp_path / "keys" / f"{holder}.txt"
    done = run(tmp_path / "data", "keys", "generate", "--for", holder, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    recipient = re.search(r"age1[0-9a-z]{58}", done.stdout)
    assert recipient
    age_keygen = shutil.which("age-keygen")
    assert age_keygen, "the age package is missing: `make test` installs it"
    derived = subprocess.run(
        [age_keygen, "-y", str(out)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.strip() == recipient.group(0)
    again = run(tmp_path / "data", "keys", "generate", "--for", holder, "--out", str(out))
    assert again.returncode == 1 and "not overwritten" in again.stderr


def test_keys_are_never_written_into_the_server_data_directory(tmp_path: Path) -> None:
    out = tmp_path / "data" / "cbp.txt"
    done = run(tmp_path / "data", "keys", "generate", "--for", "cbp", "--out", str(out))
    assert done.returncode == 1
    assert "must never hold a private key" in done.stderr
    assert not out.exists()


def test_an_operator_is_enrolled_and_can_be_disabled_like_other_staff(tmp_path: Path) -> None:
    added = run(
        tmp_path,
        *("operators", "add", "--username", "op.one", "--name", "Olive Operator"),
        "--password-stdin",
        stdin="a-long-password-1\n",
    )
    assert added.returncode == 0, added.stderr
    assert "otpauth://totp/NEXUS%20interview:op.one?secret=" in added.stdout
    disabled = run(tmp_path, "operators", "disable", "op.one")
    assert disabled.returncode == 0, disabled.stderr
    # the name is an operator's: it is not found among the officers
    wrong_role = run(tmp_path, "officers", "disable", "op.one")
    assert wrong_role.returncode == 1 and "Traceback" not in wrong_role.stderr
