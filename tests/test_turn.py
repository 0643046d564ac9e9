"""TURN without a TURN server: credentials in the TURN REST API form coturn checks, the
settings that configure them, the `joined` message that carries them, and the coturn
configuration `turn-config` writes (tests/test_coturn.py runs it in a real coturn)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.errors import SettingError
from common.names import Seat
from common.secret import Secret
from media.address_policy import EVERY_NETWORK
from server.cli import main
from server.settings import Settings, load_settings
from server.turn import coturn_config, ice_servers, mint, parse_media_peers
from signalling import messages as m

from .calls import join, open_socket, seated_interview
from .fakes import World

SECRET = "s" * 40
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
DEPLOY_CONF = Path(__file__).resolve().parents[1] / "deploy" / "turnserver.conf"
# The inputs deploy/turnserver.conf was generated from, as its header says.
DEPLOY_SECRET = "REPLACE-ME-with-the-output-of-openssl-rand-hex-32"
DEPLOY_ARGS = [
    "turn-config",
    "--realm", "turn.example.org",
    "--media-peers", "203.0.113.10,203.0.113.11",
    "--listening-ip", "198.51.100.7",
    "--external-ip", "198.51.100.7",
    "--cert", "/etc/coturn/certs/turn.example.org.crt",
    "--pkey", "/etc/coturn/private/turn.example.org.key",
]  # fmt: skip

TURN_ENV = {
    "NEXUS_TURN_URLS": "turn:turn.example.org:3478?transport=udp,"
    "turns:turn.example.org:443?transport=tcp",
    "NEXUS_TURN_SECRET": SECRET,
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The suite's settings (tests/conftest.py) with TURN configured."""
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "media_peer_networks": EVERY_NETWORK,
        "media_workers": "0",
    }
    return load_settings(TURN_ENV, overrides)


def _valid_for(server: m.IceServer, who: str, minted_from: float, minted_to: float) -> None:
    """``server`` carries both TURN URLs and a credential for ``who`` that coturn would
    accept, minted between the two times (unix seconds)."""
    assert server.urls == TURN_ENV["NEXUS_TURN_URLS"].split(",")
    expiry, _, named = server.username.partition(":")
    assert named == who
    assert minted_from + 600 - 1 <= int(expiry) <= minted_to + 600
    expected = hmac.new(SECRET.encode(), server.username.encode(), hashlib.sha1).digest()
    assert server.credential == base64.b64encode(expected).decode()


async def test_every_join_and_rejoin_gets_its_own_fresh_turn_credentials(world: World) -> None:
    seated, interview_id = await seated_interview(world)

    for seat in Seat:
        before = datetime.now(UTC).timestamp()
        joined = await join(seated[seat], interview_id)
        after = datetime.now(UTC).timestamp()
        assert len(joined.ice_servers) == 1
        _valid_for(joined.ice_servers[0], f"{interview_id}-{seat.value}", before, after)

    # The applicant's page reconnects: a new socket, a new join, new credentials.
    await seated[Seat.APPLICANT].ws.close()
    again = await open_socket(world, seated[Seat.APPLICANT].client)
    before = datetime.now(UTC).timestamp()
    rejoined = await join(again, interview_id)
    after = datetime.now(UTC).timestamp()
    _valid_for(rejoined.ice_servers[0], f"{interview_id}-applicant", before, after)


def test_a_credential_is_the_expiry_and_id_signed_with_the_secret() -> None:
    credential = mint(Secret(SECRET), "iv_0123456789abcdef-applicant", NOW, 600)

    expiry = int(NOW.timestamp()) + 600
    assert credential.username == f"{expiry}:iv_0123456789abcdef-applicant"
    expected = hmac.new(SECRET.encode(), credential.username.encode(), hashlib.sha1).digest()
    assert credential.password.reveal() == base64.b64encode(expected).decode()
    assert credential.expires.timestamp() == expiry


def test_a_credential_never_shows_its_password_or_the_secret() -> None:
    credential = mint(Secret(SECRET), "who", NOW, 600)

    assert credential.password.reveal() not in repr(credential)
    assert credential.password.reveal() not in str(credential)
    assert SECRET not in repr(load_settings(TURN_ENV))


def test_a_participant_id_that_could_confuse_the_username_is_refused() -> None:
    for bad in ("a:b", "", "x" * 129, "a b", "é"):
        with pytest.raises(ValueError, match="participant id"):
            mint(Secret(SECRET), bad, NOW, 600)
    with pytest.raises(ValueError, match="no TURN secret"):
        mint(Secret(""), "who", NOW, 600)


def test_ice_servers_carry_every_turn_url_with_one_fresh_credential() -> None:
    settings = load_settings(TURN_ENV)

    servers = ice_servers(settings, "iv_0123456789abcdef-cbsa", NOW)

    credential = mint(Secret(SECRET), "iv_0123456789abcdef-cbsa", NOW, 600)
    assert servers == [
        {
            "urls": [
                "turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:443?transport=tcp",
            ],
            "username": credential.username,
            "credential": credential.password.reveal(),
        }
    ]
    later = ice_servers(settings, "iv_0123456789abcdef-cbsa", NOW.replace(minute=5))
    assert later[0]["username"] != servers[0]["username"]


def test_no_ice_servers_without_turn() -> None:
    assert ice_servers(load_settings({}), "who", NOW) == []
    secret_only = load_settings({"NEXUS_TURN_SECRET": SECRET})
    assert ice_servers(secret_only, "who", NOW) == []


@pytest.mark.parametrize(
    "urls",
    [
        "stun:turn.example.org",
        "turn:",
        "turns:turn.example.org:443?transport=udp",
        "turn:turn.example.org:99999",
        "turn:turn.example.org?transport=sctp",
        "https://turn.example.org",
    ],
)
def test_a_bad_turn_url_is_refused(urls: str) -> None:
    with pytest.raises(SettingError, match="NEXUS_TURN_URLS"):
        load_settings({**TURN_ENV, "NEXUS_TURN_URLS": urls})


def test_turn_settings_are_validated() -> None:
    with pytest.raises(SettingError, match="at least 32"):
        load_settings({"NEXUS_TURN_SECRET": "short"})
    with pytest.raises(SettingError, match="needs NEXUS_TURN_SECRET"):
        load_settings({"NEXUS_TURN_URLS": TURN_ENV["NEXUS_TURN_URLS"]})
    for seconds in ("59", "86401"):
        with pytest.raises(SettingError, match="NEXUS_TURN_CREDENTIAL_SECONDS"):
            load_settings({"NEXUS_TURN_CREDENTIAL_SECONDS": seconds})
    assert load_settings({}).turn_credential_seconds == 600


def test_a_short_secret_is_not_echoed_in_its_error() -> None:
    with pytest.raises(SettingError) as refused:
        load_settings({"NEXUS_TURN_SECRET": "hunter2-but-short"})
    assert "hunter2" not in str(refused.value)


def test_joined_carries_ice_servers_and_old_joined_messages_still_decode() -> None:
    server = m.IceServer(urls=["turn:t.example:3478"], username="1:who", credential="pw")
    joined = m.Joined(interview_id="iv_1", seat="applicant", present=[], ice_servers=[server])

    decoded = m.decode_server(m.encode(joined))

    assert decoded == joined
    assert "pw" not in repr(joined)
    old = '{"v":1,"type":"joined","interview_id":"iv_1","seat":"cbp","present":[]}'
    plain = m.decode_server(old)
    assert isinstance(plain, m.Joined) and plain.ice_servers == []


def test_the_config_denies_every_peer_but_the_media_workers() -> None:
    peers = parse_media_peers("10.0.0.5,10.0.1.0/24")

    text = coturn_config(Secret(SECRET), "turn.example.org", peers)

    lines = text.splitlines()
    assert "use-auth-secret" in lines
    assert f"static-auth-secret={SECRET}" in lines
    assert "denied-peer-ip=0.0.0.0-255.255.255.255" in lines
    assert "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" in lines
    allowed = [line for line in lines if line.startswith("allowed-peer-ip=")]
    assert allowed == ["allowed-peer-ip=10.0.0.5", "allowed-peer-ip=10.0.1.0-10.0.1.255"]
    for needed in ("no-tcp-relay", "no-multicast-peers", "no-cli", "fingerprint", "no-tls"):
        assert needed in lines
    for never in ("allow-loopback-peers", "verbose", "Verbose", "lt-cred-mech", "no-auth"):
        assert never not in lines
    assert "tls-listening-port=443" not in lines


@pytest.mark.parametrize(
    ("peers", "why"),
    [
        ("127.0.0.1", "never sends to loopback"),
        ("::1", "never sends to loopback"),
        ("0.0.0.0", "never sends to loopback"),
        ("224.0.0.1", "never sends to loopback"),
        ("", "at least one"),
        ("10.0.0.300", "not an IP address"),
    ],
)
def test_a_media_peer_the_relay_must_not_reach_is_refused(peers: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_media_peers(peers)


def test_turn_config_refuses_without_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["turn-config", "--realm", "turn.example.org", "--media-peers", "10.0.0.5"])

    assert code == 1
    captured = capsys.readouterr()
    assert "NEXUS_TURN_SECRET" in captured.err
    assert captured.out == ""


def test_turn_config_needs_cert_and_key_together(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TURN_SECRET", SECRET)
    args = ["turn-config", "--realm", "r.example", "--media-peers", "10.0.0.5", "--cert", "c"]

    assert main(args) == 1
    assert "--pkey" in capsys.readouterr().err


def test_turn_config_with_tls_listens_on_443(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TURN_SECRET", SECRET)

    assert main([*DEPLOY_ARGS]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert "tls-listening-port=443" in lines
    assert "listening-port=3478" in lines
    assert "cert=/etc/coturn/certs/turn.example.org.crt" in lines
    assert "no-tls" not in lines


def test_the_checked_in_config_is_the_commands_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TURN_SECRET", DEPLOY_SECRET)

    assert main([*DEPLOY_ARGS]) == 0

    assert DEPLOY_CONF.read_text("utf-8") == capsys.readouterr().out


def test_turn_config_logs_no_secret(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("NEXUS_TURN_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)

    assert main(["turn-config", "--realm", "r.example", "--media-peers", "10.0.0.5"]) == 0

    assert SECRET not in caplog.text
    assert SECRET not in capsys.readouterr().err
