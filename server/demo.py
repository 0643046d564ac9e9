"""`nexus-interview demo`: a ready-to-click pilot on SQLite in ./demo-data.

Layout: ``demo-data/server`` is the server's data directory; ``demo-data/identities`` holds
the agencies' and audit body's private identities, outside it, as in a real deployment;
``demo-data/demo-credentials.json`` keeps the demo accounts' passwords and TOTP secrets so
that every run can print them. Applicant links are new on every run (only their hashes are
stored, so old ones cannot be printed again): every seeded application gets one, the first
few are printed and all are written to ``demo-data/applicant-links.txt``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
from rich.console import Console

from common.names import Agency
from common.secret import Secret
from media.address_policy import EVERY_NETWORK, parse_networks
from recordings.closed_sessions import witness_prefix
from recordings.keys import HOLDERS, Identity, read_identity_file, write_identity_file
from recordings.witness import generate_cosigner, read_cosigner
from server.types import ApplicationType, InterviewMode, Program, utc_now

from . import operator
from .app import create_app
from .auth import Passwords
from .importer import ApplicationRow
from .operations_log import OperationsLog
from .serving import serve
from .session_records import checkpoint_signer
from .settings import SETTINGS, Settings
from .store import Store

ROOT = Path("demo-data")
# Printed in the terminal; every link is in LINKS_FILE.
LINKS_SHOWN = 3
LINKS_FILE = "applicant-links.txt"
# Every TWO_STEP_EVERY-th application is interviewed in two steps (CBSA, then CBP).
TWO_STEP_EVERY = 5
# How the demo's commands are run from the repository after `make`: the venv's script,
# since `make` puts nothing on the PATH.
COMMAND = ".venv/bin/nexus-interview"
WITNESS_START_SECONDS = 30.0
DEMO_SENDER = "nexus-demo@example.org"
_SURNAMES = [
    "Tremblay",
    "Smith",
    "Gagnon",
    "Johnson",
    "Roy",
    "Williams",
    "Côté",
    "Brown",
    "Bouchard",
    "Garcia",
    "Gauthier",
    "Miller",
    "Morin",
    "Davis",
    "Lavoie",
    "Wilson",
    "Fortin",
    "Martinez",
    "Gagné",
    "Anderson",
]
_GIVEN = [
    "Émilie",
    "James",
    "Olivier",
    "Maria",
    "Chloé",
    "Robert",
    "Félix",
    "Linda",
    "Léa",
    "Michael",
    "Gabriel",
    "Patricia",
    "Zoé",
    "David",
    "Nathan",
    "Jennifer",
    "Alice",
    "William",
    "Sophie",
    "Daniel",
]
STAFF = (
    ("cbsa.officer1", "Geneviève Lapointe", Agency.CBSA),
    ("cbsa.officer2", "Marc Belanger", Agency.CBSA),
    ("cbp.officer1", "Angela Ruiz", Agency.CBP),
    ("cbp.officer2", "Thomas Reed", Agency.CBP),
)
AUDITOR = ("auditor1", "Priya Natarajan")
OPERATOR = ("operator1", "Morgan Leclerc")


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: Secret[str]
    totp_secret: Secret[str]


def demo_applications(count: int = 20) -> list[ApplicationRow]:
    """Deterministic applications: NEXUS and FAST, new and renewal."""
    rng = random.Random(2026)  # noqa: S311 - demo data, not a secret
    rows = []
    for n in range(count):
        program = Program.FAST if n % 4 == 3 else Program.NEXUS
        kind = ApplicationType.RENEWAL if n % 3 == 1 else ApplicationType.NEW
        born = date(1950 + rng.randrange(50), rng.randrange(1, 13), rng.randrange(1, 29))
        applied = date(2022, 4, 1) + timedelta(days=rng.randrange(900))
        rows.append(
            ApplicationRow(
                id=f"{'NX' if program is Program.NEXUS else 'FT'}-DEMO-{n + 1:04d}",
                program=program,
                application_type=kind,
                surname=_SURNAMES[n],
                given_names=_GIVEN[n],
                date_of_birth=born,
                citizenship="CAN" if n % 2 else "USA",
                email=f"applicant{n + 1}@example.org",
                applied_on=applied,
                language="fr" if n % 3 == 1 else "en",
                card_expiry=applied + timedelta(days=400)
                if kind is ApplicationType.RENEWAL
                else None,
            )
        )
    return rows


def demo_settings(settings: Settings, root: Path = ROOT) -> Settings:
    """The demo's data directory and recipients; an explicit public URL and media peer
    networks are kept. The demo's browsers run on this machine, whose addresses are
    private or reserved ones a deployment refuses: unless told otherwise, it checks
    connectivity to any address. Invitation e-mails go to a Maildir in the data directory,
    whatever SMTP server the environment names: nothing leaves the machine."""
    recipients = {
        f"{holder}_recipient": str(_identity(root, holder).recipient) for holder in HOLDERS
    }
    default_url = next(s.default for s in SETTINGS if s.name == "public_url")
    public_url = settings.public_url
    if public_url == default_url:
        public_url = f"http://{settings.host}:{settings.port}"
    networks = settings.media_peer_networks or parse_networks(EVERY_NETWORK)
    return settings.replace(
        data_dir=root / "server",
        public_url=public_url,
        media_peer_networks=networks,
        mail_from=settings.mail_from or DEMO_SENDER,
        smtp_host="",
        **recipients,
    )


def _identity(root: Path, holder: str) -> Identity:
    """The holder's demo identity, made on first use outside the server's data directory."""
    path = root / "identities" / f"{holder}-identity.txt"
    if not path.exists():
        write_identity_file(path, Identity.generate())
    return read_identity_file(path)[0]


async def seed(store: Store) -> list[DemoAccount]:
    """The demo applications and accounts, on a new database."""
    await store.applications.import_rows(
        [(row.id, row.values()) for row in demo_applications()], actor="demo:seed"
    )
    passwords, accounts = Passwords(), []
    for username, name, agency in STAFF:
        password = Secret(secrets.token_urlsafe(12))
        enrolment = await operator.add_officer(
            store, passwords, username, name, agency, None, password
        )
        accounts.append(DemoAccount(username, f"{agency} officer", password, enrolment.totp_secret))
    password = Secret(secrets.token_urlsafe(12))
    enrolment = await operator.add_auditor(
        store, passwords, AUDITOR[0], AUDITOR[1], "Joint audit body", password
    )
    accounts.append(DemoAccount(AUDITOR[0], "auditor", password, enrolment.totp_secret))
    password = Secret(secrets.token_urlsafe(12))
    enrolment = await operator.add_operator(store, passwords, *OPERATOR, password)
    accounts.append(DemoAccount(OPERATOR[0], "operator", password, enrolment.totp_secret))
    return accounts


def load_credentials(path: Path) -> list[DemoAccount] | None:
    if not path.exists():
        return None
    return [
        DemoAccount(a["username"], a["role"], Secret(a["password"]), Secret(a["totp"]))
        for a in json.loads(path.read_text("utf-8"))
    ]


def save_credentials(path: Path, accounts: list[DemoAccount]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(
            [
                {
                    "username": a.username,
                    "role": a.role,
                    "password": a.password.reveal(),
                    "totp": a.totp_secret.reveal(),
                }
                for a in accounts
            ],
            handle,
            indent=2,
        )


async def prepare(
    settings: Settings, saved: list[DemoAccount] | None
) -> tuple[list[DemoAccount], list[tuple[ApplicationRow, InterviewMode, Secret[str]]]]:
    """Seed a new database (or reuse the saved accounts) and issue fresh applicant links."""
    store = Store(settings.database_path)
    try:
        await store.open()
        accounts = saved if saved is not None else await seed(store)
        links = []
        for n, row in enumerate(demo_applications()):
            two_step = n % TWO_STEP_EVERY == TWO_STEP_EVERY - 1
            mode = InterviewMode.TWO_STEP if two_step else InterviewMode.JOINT
            start = utc_now() - timedelta(minutes=5)
            invitation = await operator.invite(store, settings, row.id, mode, start, 12)
            links.append((row, mode, invitation.link))
    finally:
        await store.close()
    return accounts, links


def _applicant(row: ApplicationRow, mode: InterviewMode) -> str:
    return f"{row.id}  {row.given_names} {row.surname}, born {row.date_of_birth}, {mode}"


def write_links(
    path: Path, links: Sequence[tuple[ApplicationRow, InterviewMode, Secret[str]]]
) -> None:
    """Every applicant's link, readable by this user only (a link is a credential)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        for row, mode, link in links:
            handle.write(f"{_applicant(row, mode)}\n    {link.reveal()}\n")


def show(
    settings: Settings,
    root: Path,
    accounts: list[DemoAccount],
    links: list[tuple[ApplicationRow, InterviewMode, Secret[str]]],
    console: Console,
    witness_keys: Sequence[str] = (),
) -> None:
    """``witness_keys``: the agencies' witnesses' verifier keys, without which no record
    can be complete."""
    out = console.print
    witnessed = "".join(f" --witness '{key}'" for key in witness_keys)
    out(f"[bold]Staff sign-in[/] at {settings.public_url}/login", highlight=False)
    out(
        "[bold red]DEMO ONLY: these passwords and TOTP secrets exist for this demo; "
        "real ones are never printed.[/]"
    )
    for account in accounts:
        code = pyotp.TOTP(account.totp_secret.reveal()).now()
        out(
            f"  {account.username:<14} {account.role:<13} password {account.password.reveal()}"
            f"  TOTP secret {account.totp_secret.reveal()}  (code now {code})",
            highlight=False,
            soft_wrap=True,
        )
    out(
        "  Codes change every 30 s: put the secret in an authenticator app "
        "(or: oathtool --totp -b SECRET).",
        highlight=False,
    )
    out("[bold]Applicant links[/] (new on every run; the applicant confirms the date of birth):")
    for row, mode, link in links[:LINKS_SHOWN]:
        out(f"  {_applicant(row, mode)}", highlight=False)
        out(f"    {link.reveal()}", highlight=False, soft_wrap=True)
    out(f"  All {len(links)} applicants' links: {root / LINKS_FILE}", highlight=False)
    out(
        f"Invitation e-mails (English or French, with a calendar entry and a link of their "
        f"own) are delivered to the Maildir {settings.data_dir / 'mail'}, never sent out;"
        f" read them with `mutt -f {settings.data_dir / 'mail'}` or list them with"
        f" `{COMMAND} invitations list --data-dir {settings.data_dir}`.",
        highlight=False,
        soft_wrap=True,
    )
    out(
        f"Private identities of CBSA, CBP and the audit body: {root / 'identities'}",
        highlight=False,
    )
    verifier = checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    records = settings.data_dir / "records"
    out(f"Session records are written to {records}; verify one with:", highlight=False)
    out(
        f"  {COMMAND} records verify {records}/<interview> --key '{verifier}'{witnessed}",
        highlight=False,
        soft_wrap=True,
    )
    out("Replay them in the audit console (auditor1 signs in there), in another terminal:")
    identity = root / "identities" / "audit-identity.txt"
    out(
        f"  {COMMAND} --data-dir {settings.data_dir} --audit-dir {root / 'audit-console'}"
        f" audit-console --identity {identity} --key '{verifier}'{witnessed}",
        highlight=False,
        soft_wrap=True,
    )


def run_demo(settings: Settings, console: Console, root: Path = ROOT) -> int:
    """Seed, print, serve until Ctrl-C. A Ctrl-C at any moment, setting up included, is
    the way a person stops the demo: it ends it cleanly (the witnesses stopped) with 0."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        settings = demo_settings(settings, root)
        credentials = root / "demo-credentials.json"
        saved = load_credentials(credentials)
        with _ctrl_c_deferred():
            accounts, links = asyncio.run(prepare(settings, saved))
            if saved is None:
                save_credentials(credentials, accounts)
        write_links(root / LINKS_FILE, links)
        witnesses = start_witnesses(settings, root, processes)
        witness_keys = [entry.split("=", 2)[2] for entry in witnesses.split(",")]
        show(settings, root, accounts, links, console, witness_keys)
        for entry in witnesses.split(","):
            agency, url = entry.split("=")[:2]
            console.print(f"{agency} witness (cosigns every record as it goes): {url}")
        console.print(f"Serving on [bold]{settings.public_url}[/] — press Ctrl-C to stop.")
        serve(
            create_app(settings.replace(witnesses=witnesses)),
            settings.host,
            settings.port,
            settings.event_loop,
        )
    except KeyboardInterrupt:
        console.print("Stopped before the demo was serving.")
    finally:
        _stop(processes)
    return 0


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Seeding runs to its end and its accounts are saved before a Ctrl-C takes effect:
    cut short, it would leave staff accounts whose passwords no file holds (the next run
    could not sign in nor seed again) and a database connection whose thread keeps the
    process alive."""
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """The witnesses, once the server has shut down (its last checkpoints cosigned)."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_witnesses(
    settings: Settings, root: Path, processes: list[subprocess.Popen[bytes]]
) -> str:
    """CBSA's and CBP's witnesses, each its own process with its own key (on the agency's
    own host in production), trusting this server's checkpoint key for its logs (each
    interview's and the log of closed sessions) and its operators' log key; each process
    is added to ``processes`` as it starts, so that the caller stops every one even if
    this is interrupted.
    Returns the server's `witnesses` setting.

    Each runs in a session of its own, like the media workers: a Ctrl-C in the terminal
    reaches the demo alone, whose server still submits its last checkpoints to them while
    it shuts down; the demo stops them after."""
    server_key = checkpoint_signer(settings.data_dir / "checkpoint-signing.pem").verifier_key
    log_name = urlsplit(settings.public_url).netloc
    operations_key = OperationsLog(settings.data_dir, log_name).verifier_key
    prefix = witness_prefix(log_name)  # interviews, closed sessions, the operators' log
    entries = []
    for agency in Agency:
        name = agency.value.lower()
        key = root / "witnesses" / f"{name}.key"
        if key.exists():
            cosigner = read_cosigner(key)
        else:
            cosigner = generate_cosigner(key, f"{name}.demo/witness")
        port = _free_port(settings.host)
        command = [
            *_nexus_interview(),
            "witness",
            "--key",
            str(key),
            "--log-key",
            server_key,
            "--log-key",
            operations_key,
            "--origin-prefix",
            prefix,
            "--state",
            str(root / "witnesses" / f"{name}-state"),
            "--listen",
            f"{settings.host}:{port}",
        ]
        # our own interpreter and arguments, no shell
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        )
        entries.append(f"{agency.value}=http://{settings.host}:{port}={cosigner.verifier_key}")
        _wait_until_listening(settings.host, port, processes[-1])
    return ",".join(entries)


def _wait_until_listening(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WITNESS_START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the witness on {host}:{port} did not start")


def _nexus_interview() -> list[str]:
    return [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())"]


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
