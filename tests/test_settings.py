from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from common.errors import SettingError
from server.settings import SETTINGS, Settings, describe, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_load_with_their_types() -> None:
    settings = load_settings({}, {})
    assert settings.port == 8080
    assert settings.cookie_secure is True
    assert settings.data_dir == Path("nexus-data")
    assert settings.database_path == Path("nexus-data/nexus.sqlite3")


def test_flag_beats_environment_beats_default() -> None:
    settings = load_settings({"NEXUS_PORT": "9001", "NEXUS_HOST": "0.0.0.0"}, {"port": "9002"})
    assert settings.port == 9002
    assert settings.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEXUS_PORT": "http"}, "NEXUS_PORT 'http' is not valid: expected a whole number"),
        ({"NEXUS_PORT": "70000"}, "between 1 and 65535"),
        ({"NEXUS_COOKIE_SECURE": "maybe"}, "expected true or false"),
        ({"NEXUS_PUBLIC_URL": "ftp://x"}, "expected an absolute http:// or https:// address"),
        ({"NEXUS_HOST": "my host"}, "expected an IP address"),
        ({"NEXUS_CBSA_RECIPIENT": "age1nope"}, "expected an age X25519 recipient"),
        ({"NEXUS_LOG_LEVEL": "LOUD"}, "expected one of DEBUG, INFO, WARNING, ERROR"),
        ({"NEXUS_EVENT_LOOP": "trio"}, "expected one of asyncio, uvloop"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_is_expected(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingError, match=re.escape(message)):
        load_settings(env, {})


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(SettingError, match="--session-max-age '5' is not valid"):
        load_settings({}, {"session_max_age": "5"})


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(SettingError, match="unknown setting"):
        load_settings({}, {"colour": "blue"})


def test_every_setting_is_declared_once_on_the_settings_class() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]
    for setting in SETTINGS:
        assert setting.help.strip(), f"{setting.name} has no help"
        setting.cast(setting.default)  # every default is itself a valid value


def test_every_setting_is_in_the_readme_table() -> None:
    readme = README.read_text("utf-8")
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.env}` \| `{re.escape(setting.flag)}` \|.*$", readme, re.M)
        assert row, f"{setting.env} is missing from the README settings table"
        assert setting.help.split(".")[0][:30] in row.group(0), f"{setting.env}: stale help"


def test_describe_lists_every_setting_with_its_value() -> None:
    rows = describe(load_settings({"NEXUS_PORT": "9999"}, {}))
    assert [row[0] for row in rows] == [s.env for s in SETTINGS]
    assert rows[1][:3] == ("NEXUS_PORT", "--port", "9999")
