"""An applicant whose network lets out only TCP 443 completes an interview through TURN
over TLS, in real Chromium.

Machines on one switch (tests/netns.py), laid out as docs/deploy.md lays out production:
- ``proxy`` runs nginx with deploy/nginx.conf (tests/nginx.py): its 443 carries the
  pages, the call's WebSocket and, told apart by name (SNI), TURN over TLS;
- ``server`` runs `nexus-interview serve` (media in its process) behind it, with TURN
  settings naming the relay;
- ``turn`` runs coturn as `nexus-interview turn-config` configures it, TLS on 443 with
  the relay name's certificate, relaying to the server alone;
- ``officers`` holds both officers with ordinary access;
- ``applicant`` runs Chromium behind a firewall (nftables, in its namespace) that drops
  all UDP and every TCP connection but one to the proxy's 443: the pages and the call
  both come that way;
- ``cut-off`` has the same firewall, but its DNS sends the relay's name to the relay's
  own address, which the firewall blocks: the pages load, no call gets out.

Both names resolve to the proxy on the browsers' machines. Chromium trusts the two
certificates through ``--ignore-certificate-errors-spki-list`` with their keys' hashes:
it needs no NSS tools and trusts nothing else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from playwright.async_api import Page, async_playwright, expect
from yarl import URL

from common.names import Agency, Kind, Seat
from recordings.keys import Identity
from server import operator
from server.settings import load_settings
from server.store import Store
from server.types import InterviewMode, utc_now
from server.views.device_check import CHECKS_PER_HOUR
from signalling import messages as m

from ..certificates import TestCA
from ..coturn import start_coturn
from ..fakes import add_applications, application, fast_passwords
from ..firefox_driver import firefox
from ..media import SyntheticParticipant, wait_for
from ..netns import Machine, Network, in_namespace
from ..nginx import start_nginx
from ..served import Browser, password
from .conftest import CHROMIUM_FLAGS
from .pages import videos_playing

SECRET = "relay-only-test-secret-" + os.urandom(16).hex()
PORT = 8080
PAGES_NAME = "interviews.nexus.test"
TURN_NAME = "turn.nexus.test"
FRAMES = 30
# The call's TURN credentials expire this soon after the join, and coturn grants new
# allocations this long: Chromium refreshes an allocation of under two minutes half-way
# through and a longer one a minute before its end, so its first refresh comes about 70 s
# after it allocated, once the credential it holds has expired.
CREDENTIAL_SECONDS = 60
ALLOCATION_SECONDS = 130

# Wraps the page's RTCPeerConnection: keeps each one for the test to read its stats, and
# (when asked) forces relay-only ICE, as a browser policy or extension might.
RECORD_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  const forceRelay = %s;
  window.__pcs = [];
  window.RTCPeerConnection = function (config = {}, ...rest) {
    const chosen = forceRelay ? { ...config, iceTransportPolicy: "relay" } : config;
    const pc = new Original(chosen, ...rest);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();
"""

SELECTED_PAIR = """
async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  const stats = await pc.getStats();
  const config = pc.getConfiguration();
  let pairId = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  const pair = pairId && stats.get(pairId);
  const local = pair && stats.get(pair.localCandidateId);
  return {
    policy: config.iceTransportPolicy,
    type: local ? local.candidateType : null,
    protocol: local ? local.relayProtocol : null,
    url: local ? local.url : null,
  };
}
"""

# The frames each other seat's video has shown so far, by seat.
FRAMES_SHOWN = """
(seats) => Object.fromEntries(seats.map((seat) => {
  const video = document.querySelector(`.tile[data-seat="${seat}"] video`);
  return [seat, video ? video.getVideoPlaybackQuality().totalVideoFrames : 0];
}))
"""

# The TURN username of the call's peer connection (its credential's expiry, and who).
RELAY_USERNAME = """
() => {
  const pc = window.__pcs[window.__pcs.length - 1];
  return pc.getConfiguration().iceServers[0].username;
}
"""


@dataclass
class Site:
    network: Network
    server: Machine
    turn: Machine
    officers: Machine
    applicant: Machine
    cut_off: Machine
    ca: TestCA
    spki: str  # the pages' and the relay's keys, for Chromium to trust
    invitations: list[tuple[str, str]]  # (interview id, link token), one per test
    totp: dict[str, str]  # by officer's username
    coturn_log: Path  # verbose: it names each allocation's requests, by username
    base: str = f"https://{PAGES_NAME}"


def _command(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _frames_from_applicant(people: dict[Seat, SyntheticParticipant]) -> dict[Seat, int]:
    return {seat: p.got(Seat.APPLICANT, Kind.VIDEO).frames for seat, p in people.items()}


def _only_tcp_443_to(applicant: Machine, proxy: Machine) -> None:
    """The applicant's firewall: out only to the proxy's TCP 443, in only what answers
    that; no UDP at all."""
    rules = f"""
table inet applicant {{
  chain output {{
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    ip daddr {proxy.address} tcp dport 443 accept
  }}
  chain input {{
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
  }}
}}
"""
    result = applicant.run(["nft", "-f", "-"], input=rules)
    assert result.returncode == 0, result.stderr


async def _prepare(
    data: Path, invitations: int
) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str]]:
    """The data directory: applications, two officers and invitations; the recipients."""
    recipients = {
        f"{holder}_recipient": str(Identity.generate().recipient)
        for holder in ("cbsa", "cbp", "audit")
    }
    settings = load_settings({}, {"data_dir": str(data), **recipients})
    store = await Store(settings.database_path).open()
    try:
        apps = [application(f"NX-000{n + 1}") for n in range(invitations)]
        await add_applications(store, *apps)
        totp = {}
        for n in range(invitations):  # each test its officers: a one-time code is used once
            for agency in Agency:
                enrolment = await operator.add_officer(
                    store, fast_passwords(), f"{agency.lower()}.{n}", "Officer", agency, None,
                    password(agency),
                )  # fmt: skip
                totp[f"{agency.lower()}.{n}"] = enrolment.totp_secret.reveal()
        links = []
        for app in apps:
            invitation = await operator.invite(
                store, settings, app.id, InterviewMode.JOINT, utc_now(), 2
            )
            token = invitation.link.reveal().rsplit("/", 1)[1]
            links.append((str(invitation.interview_id), token))
    finally:
        await store.close()
    return recipients, links, totp


async def _up(url: str, tls: ssl.SSLContext) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url, ssl=tls) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


async def _refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return True
    writer.close()
    return False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for tool in ("turnserver", "nginx", "nft", "chromium"):
        if shutil.which(tool) is None:
            pytest.fail(f"these tests need {tool}: `make heavy` installs it from Debian")
    directory = tmp_path_factory.mktemp("relay-only")
    recipients, invitations, totp = asyncio.run(_prepare(directory / "data", 6))
    ca = TestCA.create(directory / "ca")
    pages, relay = ca.issue("pages", PAGES_NAME), ca.issue("turn", TURN_NAME)
    with Network() as network:
        server, turn = network.machine("server"), network.machine("turn")
        proxy, officers = network.machine("proxy"), network.machine("officers")
        applicant, cut_off = network.machine("applicant"), network.machine("cut-off")
        for browser in (officers, applicant, cut_off):
            browser.resolve(PAGES_NAME, proxy.address)
            browser.resolve(TURN_NAME, proxy.address)
        # cut-off's network sends the relay's name elsewhere (to the relay's own address,
        # which its firewall blocks), as a network that filters by destination does
        cut_off.resolve(TURN_NAME, turn.address)
        options = [f"--max-allocate-lifetime={ALLOCATION_SECONDS}", "--verbose"]
        coturn_log = start_coturn(
            turn, directory, SECRET, TURN_NAME, server.address, relay, options
        )
        env = {
            **os.environ,
            "NEXUS_DATA_DIR": str(directory / "data"),
            "NEXUS_HOST": server.address,
            "NEXUS_PORT": str(PORT),
            "NEXUS_PUBLIC_URL": f"https://{PAGES_NAME}",
            "NEXUS_TRUSTED_PROXIES": proxy.address,
            "NEXUS_MEDIA_WORKERS": "0",
            # The relay's address is private here: the media must accept it as a peer.
            "NEXUS_MEDIA_PEER_NETWORKS": str(network.subnet),
            "NEXUS_TURN_URLS": (
                f"turn:{TURN_NAME}:3478?transport=udp,turns:{TURN_NAME}:443?transport=tcp"
            ),
            "NEXUS_TURN_SECRET": SECRET,
            "NEXUS_TURN_CREDENTIAL_SECONDS": str(CREDENTIAL_SECONDS),
            **{f"NEXUS_{name.upper()}": value for name, value in recipients.items()},
        }
        with open(directory / "server.log", "ab") as log:
            server.popen([_command("nexus-interview"), "serve"], env=env, stderr=log)
        start_nginx(
            proxy,
            directory,
            {
                "PAGES_NAME": PAGES_NAME,
                "TURN_NAME": TURN_NAME,
                "PAGES_CERT": str(pages.cert),
                "PAGES_KEY": str(pages.key),
                "INTERVIEW_SERVER": f"{server.address}:{PORT}",
                "TURN_TLS_SERVER": f"{turn.address}:443",
            },
        )
        in_namespace(officers, _up, f"https://{PAGES_NAME}/healthz", ca.client_context())
        _only_tcp_443_to(applicant, proxy)
        _only_tcp_443_to(cut_off, proxy)
        # The firewall holds: the proxy's 443 is the one way out.
        assert not in_namespace(applicant, _refused, proxy.address, 443)
        for address, port in ((server.address, PORT), (turn.address, 443), (turn.address, 3478)):
            assert in_namespace(applicant, _refused, address, port)
        spki = f"{pages.spki_pin()},{relay.spki_pin()}"
        yield Site(
            network, server, turn, officers, applicant, cut_off, ca, spki, invitations, totp,
            coturn_log,
        )  # fmt: skip


async def _officers_take(site: Site, interview_id: str, n: int) -> dict[Seat, Browser]:
    browsers = {}
    for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
        browser = browsers[seat] = Browser(URL(site.base), site.ca.client_context())
        signed_in = await browser.form(
            "/login",
            {
                "username": f"{agency.lower()}.{n}",
                "password": password(agency).reveal(),
                "code": pyotp.TOTP(site.totp[f"{agency.lower()}.{n}"]).now(),
            },
        )
        assert signed_in == 303
        taken, body = await browser.post(f"/api/interviews/{interview_id}/take", {})
        assert taken == 200, body
    return browsers


async def _officers_join(
    interview_id: str, browsers: dict[Seat, Browser], people: dict[Seat, SyntheticParticipant]
) -> m.PeerPath:
    """Both officers join; returns once each receives the applicant's video, with the
    path the applicant's page reported to the CBSA officer."""
    for seat, browser in browsers.items():
        await browser.call(interview_id, people[seat])
    await wait_for(
        lambda: all(p.got(Seat.APPLICANT, Kind.VIDEO).frames >= FRAMES for p in people.values()),
        within=60,
    )
    path = await browsers[Seat.CBSA].expect(m.PeerPath)
    assert isinstance(path, m.PeerPath)
    return path


async def _applicant_checks_in(page: Page, site: Site, token: str) -> None:
    """Invitation link, English, the device check, date of birth, consent: the call."""
    await page.goto(f"{site.base}/i/{token}")
    await page.locator("#step-language button[data-language='en']").click()
    await expect(page.locator("#devices-continue")).to_be_enabled(timeout=20_000)
    # the device check finds the one way out: the relay over TLS
    for way, ok in (("udp", "false"), ("relay-udp", "false"), ("relay-tls", "true")):
        line = page.locator(f"[data-check='{way}']")
        await expect(line).to_have_attribute("data-ok", ok, timeout=20_000)
    await expect(page.locator("#path-help")).to_be_hidden()
    await page.locator("#devices-continue").click()
    await page.locator("#date_of_birth").fill("1980-05-17")
    await page.locator("#step-identity button[type=submit]").click()
    await page.wait_for_load_state()
    await expect(page.locator("#step-consent")).to_be_visible()
    await page.locator("#consent-check").check()
    await page.locator("#consent-give").click()
    await expect(page.locator("#step-call")).to_be_visible(timeout=20_000)


class Applicant:
    """Chromium on the applicant's machine: started from its namespace thread, so the
    browser and every process it starts use the applicant's network alone."""

    def __init__(self, site: Site, force_relay: bool = False) -> None:
        self.site = site
        self.force_relay = force_relay
        self.errors: list[str] = []

    async def start(self) -> None:
        self._playwright = await async_playwright().start()
        flags = [*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={self.site.spki}"]
        self._browser = await self._playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=flags
        )
        self.page = await self._browser.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        script = RECORD_PEER_CONNECTIONS % ("true" if self.force_relay else "false")
        await self.page.add_init_script(script)

    async def open(self, token: str) -> None:
        await self.start()
        await _applicant_checks_in(self.page, self.site, token)

    async def device_check(self, token: str, language: str) -> tuple[dict[str, str | None], str]:
        """The device check's connection lines (way: data-ok) and the help it shows."""
        await self.start()
        await self.page.goto(f"{self.site.base}/i/{token}")
        await self.page.locator(f"#step-language button[data-language='{language}']").click()
        help = self.page.locator("#path-help")
        await expect(help).to_be_visible(timeout=20_000)
        ways: dict[str, str | None] = {}
        for way in ("udp", "relay-udp", "relay-tls"):
            ways[way] = await self.page.locator(f"[data-check='{way}']").get_attribute("data-ok")
        return ways, await help.inner_text()

    async def in_call(self) -> dict[str, Any]:
        """Once both officers' videos play: the selected candidate pair's local side."""
        await videos_playing(self.page, ["cbsa", "cbp"], within=60)
        selected: dict[str, Any] = await self.page.evaluate(SELECTED_PAIR)
        return selected

    async def relay_username(self) -> str:
        """The TURN username of the call's peer connection: ``<expiry>:<who>``."""
        username: str = await self.page.evaluate(RELAY_USERNAME)
        return username

    async def done(self) -> None:
        await expect(self.page.locator("#step-done")).to_be_visible(timeout=20_000)

    async def close(self) -> None:
        if hasattr(self, "_browser"):
            await self._browser.close()
            await self._playwright.stop()


class OfficerDesks:
    """Both officers' consoles, in Chromium on the officers' machine (ordinary access)."""

    def __init__(self, site: Site, n: int) -> None:
        self.site = site
        self.n = n
        self.errors: list[str] = []
        self.pages: dict[Seat, Page] = {}

    async def available(self) -> None:
        """Both sign in and say they are free: the waiting room pairs them with the
        applicant as soon as she is ready."""
        base = self.site.base
        self._playwright = await async_playwright().start()
        flags = [*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={self.site.spki}"]
        self._browser = await self._playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=flags
        )
        for seat, agency in ((Seat.CBSA, Agency.CBSA), (Seat.CBP, Agency.CBP)):
            username = f"{agency.lower()}.{self.n}"
            page = self.pages[seat] = await (await self._browser.new_context()).new_page()
            page.on("pageerror", lambda error: self.errors.append(str(error)))
            await page.goto(f"{base}/login")
            await page.get_by_label("Username").fill(username)
            await page.get_by_label("Password").fill(password(agency).reveal())
            await page.get_by_label("One-time code").fill(
                pyotp.TOTP(self.site.totp[username]).now()
            )
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{base}/officer")
            await expect(page.locator("#queue-status")).not_to_have_text("Loading the queue…")
            await page.locator("#availability").click()
            await expect(page.locator("#availability")).to_have_attribute("aria-pressed", "true")

    async def in_call(self) -> tuple[str | None, str]:
        """Once each console plays the applicant and the other officer: the applicant's
        tile's path label (its data-path, its text) on the CBSA console."""
        await videos_playing(self.pages[Seat.CBSA], ["applicant", "cbp"], within=60)
        await videos_playing(self.pages[Seat.CBP], ["applicant", "cbsa"], within=60)
        label = self.pages[Seat.CBSA].locator('.tile[data-seat="applicant"] [data-path]')
        await expect(label).to_have_count(1, timeout=20_000)
        return await label.get_attribute("data-path"), await label.inner_text()

    async def end(self) -> None:
        await self.pages[Seat.CBSA].locator("#end").click()

    async def applicant_frames(self) -> dict[Seat, int]:
        """The frames of the applicant's video each console has shown so far."""
        return {
            seat: (await page.evaluate(FRAMES_SHOWN, ["applicant"]))["applicant"]
            for seat, page in self.pages.items()
        }

    async def close(self) -> None:
        if hasattr(self, "_browser"):
            await self._browser.close()
            await self._playwright.stop()


async def _close_officers(
    people: dict[Seat, SyntheticParticipant], browsers: dict[Seat, Browser]
) -> None:
    """The officers' synthetic media and their aiohttp sessions, on their machine's thread."""
    for person in people.values():
        await person.close()
    for browser in browsers.values():
        await browser.close()


def _interview_over_relay(
    site: Site, number: int, force_relay: bool
) -> tuple[dict[str, Any], m.PeerPath]:
    interview_id, token = site.invitations[number]
    officers_thread = site.officers.thread()
    applicant_thread = site.applicant.thread()
    browsers = officers_thread.submit(_officers_take(site, interview_id, number)).result(timeout=60)
    people = {seat: SyntheticParticipant(seat) for seat in (Seat.CBSA, Seat.CBP)}
    applicant = Applicant(site, force_relay)
    try:
        applicant_thread.submit(applicant.open(token)).result(timeout=120)
        officers_path = officers_thread.submit(_officers_join(interview_id, browsers, people))
        selected = applicant_thread.submit(applicant.in_call()).result(timeout=120)
        path = officers_path.result(timeout=120)
        officers_thread.submit(browsers[Seat.CBSA].end()).result(timeout=30)
        assert applicant.errors == []
        return selected, path
    finally:
        officers_thread.submit(_close_officers(people, browsers)).result(timeout=30)
        applicant_thread.submit(applicant.close()).result(timeout=30)
        officers_thread.close()
        applicant_thread.close()


def test_an_applicant_allowed_only_tcp_443_completes_an_interview_over_turn_tls(
    site: Site,
) -> None:
    _, token = site.invitations[0]
    officers_thread, applicant_thread = site.officers.thread(), site.applicant.thread()
    desks, applicant = OfficerDesks(site, 0), Applicant(site)
    try:
        officers_thread.submit(desks.available()).result(timeout=120)
        applicant_thread.submit(applicant.open(token)).result(timeout=120)
        label = officers_thread.submit(desks.in_call())
        selected = applicant_thread.submit(applicant.in_call()).result(timeout=120)
        path, text = label.result(timeout=120)
        officers_thread.submit(desks.end()).result(timeout=30)
        applicant_thread.submit(applicant.done()).result(timeout=30)
    finally:
        officers_thread.submit(desks.close()).result(timeout=30)
        applicant_thread.submit(applicant.close()).result(timeout=30)
        officers_thread.close()
        applicant_thread.close()

    # the browser was free to choose, and the only way that worked was the relay over TLS
    assert selected["policy"] == "all"
    assert selected["type"] == "relay", selected
    assert selected["protocol"] == "tls", selected
    # the officers' consoles say so on the applicant's tile
    assert (path, text) == ("relayed", "relayed connection (tls)")
    assert applicant.errors == [] and desks.errors == []


def test_an_applicant_forced_to_relay_only_completes_an_interview_over_turn_tls(
    site: Site,
) -> None:
    selected, path = _interview_over_relay(site, 1, force_relay=True)

    assert selected["policy"] == "relay"
    assert selected["type"] == "relay", selected
    assert selected["protocol"] == "tls", selected
    assert path == m.PeerPath(seat="applicant", path="relayed", protocol="tls")


async def _frames_while(
    read: Callable[[], Awaitable[Mapping[str, int]]], going: Callable[[], bool], within: float
) -> float:
    """Read the frames shown (by video) twice a second while ``going()``, for at most
    ``within`` seconds; the longest any video went without a new frame, in seconds."""
    last = await read()
    since = {video: time.monotonic() for video in last}
    longest, deadline = 0.0, time.monotonic() + within
    while going() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now, shown = time.monotonic(), await read()
        for video, frames in shown.items():
            if frames > last[video]:
                since[video] = now
            longest = max(longest, now - since[video])
        last = shown
    return longest


def _allocation(log: Path, username: str) -> tuple[int | None, int | None]:
    """When (coturn's seconds since start) ``username``'s allocation was made, and when
    coturn first refreshed it (not a release: lifetime above 0), from coturn's log."""
    made = refreshed = None
    for line in log.read_text("utf-8", errors="replace").splitlines():
        at, _, rest = line.partition(": : ")
        if f"username=<{username}>" not in rest or not at.isdigit():
            continue
        if ": new," in rest and made is None:
            made = int(at)
        elif ": refreshed," in rest and "lifetime=0," not in rest and refreshed is None:
            refreshed = int(at)
    return made, refreshed


@pytest.mark.timeout(360)  # the call lasts until the browser has refreshed its relay
def test_a_relayed_call_outlives_its_turn_credentials(site: Site) -> None:
    _, token = site.invitations[5]
    officers_thread, applicant_thread = site.officers.thread(), site.applicant.thread()
    desks, applicant = OfficerDesks(site, 5), Applicant(site, force_relay=True)
    try:
        officers_thread.submit(desks.available()).result(timeout=120)
        started = time.time()
        applicant_thread.submit(applicant.open(token)).result(timeout=120)
        officers_thread.submit(desks.in_call()).result(timeout=120)
        applicant_thread.submit(applicant.in_call()).result(timeout=120)
        joined = time.time()
        username = applicant_thread.submit(applicant.relay_username()).result(timeout=30)
        expiry = int(username.split(":")[0])
        page = applicant.page

        def not_refreshed() -> bool:
            return _allocation(site.coturn_log, username)[1] is None

        async def applicant_sees() -> Mapping[str, int]:
            shown: dict[str, int] = await page.evaluate(FRAMES_SHOWN, ["cbsa", "cbp"])
            return shown

        async def officers_see() -> Mapping[str, int]:
            return {str(seat): n for seat, n in (await desks.applicant_frames()).items()}

        within = ALLOCATION_SECONDS + 30
        seen = applicant_thread.submit(_frames_while(applicant_sees, not_refreshed, within))
        seen_by_officers = officers_thread.submit(
            _frames_while(officers_see, not_refreshed, within)
        )
        stalls = (seen.result(timeout=300), seen_by_officers.result(timeout=300))
        time.sleep(5)  # the call goes on past the refresh
        after = applicant_thread.submit(applicant.in_call()).result(timeout=60)
        officers_thread.submit(desks.in_call()).result(timeout=60)
        officers_thread.submit(desks.end()).result(timeout=30)
        applicant_thread.submit(applicant.done()).result(timeout=30)
    finally:
        officers_thread.submit(desks.close()).result(timeout=30)
        applicant_thread.submit(applicant.close()).result(timeout=30)
        officers_thread.close()
        applicant_thread.close()

    # the call's credentials were this join's own, and short-lived
    assert started + CREDENTIAL_SECONDS - 1 <= expiry <= joined + CREDENTIAL_SECONDS
    # coturn refreshed the allocation when its credential had expired: the allocation
    # was made after `started`, the refresh came (refreshed - made) seconds later
    made, refreshed = _allocation(site.coturn_log, username)
    assert made is not None and refreshed is not None, "coturn never refreshed the relay"
    assert started + (refreshed - made) > expiry
    # and media kept flowing both ways through the relay: no video stood still for 1 s
    assert max(stalls) < 1.0, stalls
    assert after["type"] == "relay" and after["protocol"] == "tls", after
    assert applicant.errors == [] and desks.errors == []


async def _firefox_applicant(
    site: Site, token: str, officers_join: Callable[[], concurrent.futures.Future[m.PeerPath]]
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Firefox checks in as the applicant, forced to relays; once its call page is up the
    officers join. Its device check, its selected pair in the call, and all its events."""
    parameters = {
        "base": site.base,
        "token": token,
        "language": "en",
        "typed": "05171980",
        "dateOfBirth": "1980-05-17",
        "caFile": str(site.ca.cert),
        "forceRelay": True,
        "checks": ["browser", "camera", "microphone", "connection", "udp", "relay-tls"],
    }
    async with firefox("applicant.mjs", **parameters) as driver:
        devices = await driver.until("devices")
        await driver.until("call")
        officers_join()
        in_call = await driver.until("in-call")
        return devices, in_call, await driver.finish()


def test_an_applicant_in_firefox_allowed_only_tcp_443_completes_an_interview_over_turn_tls(
    site: Site,
) -> None:
    interview_id, token = site.invitations[4]
    officers_thread = site.officers.thread()
    applicant_thread = site.applicant.thread()
    browsers = officers_thread.submit(_officers_take(site, interview_id, 4)).result(timeout=60)
    people = {seat: SyntheticParticipant(seat) for seat in (Seat.CBSA, Seat.CBP)}
    joined: list[concurrent.futures.Future[m.PeerPath]] = []

    def officers_join() -> concurrent.futures.Future[m.PeerPath]:
        joined.append(officers_thread.submit(_officers_join(interview_id, browsers, people)))
        return joined[-1]

    try:
        flow = applicant_thread.submit(_firefox_applicant(site, token, officers_join))
        while not joined:  # Firefox is in its call page: the officers join
            time.sleep(0.2)
            assert not flow.done() or flow.exception() is None, flow.exception()
        path = joined[0].result(timeout=180)
        before = _frames_from_applicant(people)
        time.sleep(3)
        after = _frames_from_applicant(people)
        officers_thread.submit(browsers[Seat.CBSA].end()).result(timeout=30)
        devices, in_call, events = flow.result(timeout=180)
    finally:
        officers_thread.submit(_close_officers(people, browsers)).result(timeout=30)
        officers_thread.close()
        applicant_thread.close()

    # the device check found the one way out
    assert devices["checks"]["udp"] == "false" and devices["checks"]["relay-tls"] == "true"
    # media both ways: Firefox played both officers (its "in-call"), and they got its video
    assert all(after[seat] > before[seat] for seat in people), (before, after)
    assert in_call["selected"]["type"] == "relay", in_call
    assert in_call["selected"]["policy"] == "relay", in_call
    assert path == m.PeerPath(seat="applicant", path="relayed", protocol="tls")
    done = events[-1]
    assert done["step"] == "done"
    assert done["pageErrors"] == [] and done["consoleErrors"] == []


def test_the_device_check_tells_an_applicant_whose_network_lets_no_call_out_what_to_do(
    site: Site,
) -> None:
    _, token = site.invitations[2]
    thread = site.cut_off.thread()
    applicant = Applicant(site)
    try:
        ways, help = thread.submit(applicant.device_check(token, "fr")).result(timeout=60)
    finally:
        thread.submit(applicant.close()).result(timeout=30)
        thread.close()

    assert ways == {"udp": "false", "relay-udp": "false", "relay-tls": "false"}
    assert "Votre réseau bloque les appels vidéo" in help
    assert f"autoriser les connexions vers {TURN_NAME} sur le port 443" in help
    assert applicant.errors == []


async def _check_until_refused(site: Site, token: str) -> int:
    """Ask for the link's relays as its device check does, until refused: how many
    were answered."""
    url = f"{site.base}/api/invitations/{token}/relays"
    async with aiohttp.ClientSession() as http:
        for answered in range(CHECKS_PER_HOUR + 1):
            async with http.get(url, ssl=site.ca.client_context()) as response:
                if response.status == 429:
                    return answered
                assert response.status == 200, await response.text()
    raise AssertionError(f"{CHECKS_PER_HOUR + 1} device checks in a row were all answered")


def test_a_link_that_checked_too_often_is_told_on_the_page_to_wait(site: Site) -> None:
    _, token = site.invitations[3]
    thread = site.applicant.thread()
    applicant = Applicant(site)
    try:
        answered = thread.submit(_check_until_refused(site, token)).result(timeout=60)
        ways, help = thread.submit(applicant.device_check(token, "fr")).result(timeout=60)
    finally:
        thread.submit(applicant.close()).result(timeout=30)
        thread.close()

    assert answered == CHECKS_PER_HOUR
    assert ways == {"udp": None, "relay-udp": None, "relay-tls": None}  # nothing tried
    assert "La vérification de la connexion est en pause" in help
    assert "Réessayez dans 60 min" in help
    assert applicant.errors == []
