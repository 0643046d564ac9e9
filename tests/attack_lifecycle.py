"""The attack on an interview's life, on an interview no drawn input names: each party's
step tried at the wrong moment and repeated (ready, join, offer, end and leave on the
socket; consent, take, take-decision, decision and ID still over HTTP), a still and both
decisions raced against both officers' End, and everything again once the call is over
and once the interview is closed.

A refusal must be a 4xx (an `error` on the socket) with the code it calls for and leave
what is stored as it was; what is accepted must be stored once. Connections come and go
with the network, so who is connected is left out of the comparison. Returns what went
wrong; the test judges it once the attack is over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientWebSocketResponse

from common.names import Agency
from server import interview_state
from server.appkeys import STILLS
from server.interview_state import Party, Phase, Presence
from server.views.applicant import CONSENT_VERSION
from signalling import messages as m

from .attack_scene import Scene
from .fakes import Client, jpeg_image

# Who acts on the interview: its applicant, its two officers, and another CBSA officer.
APPLICANT, CBSA, CBP, OTHER = "lc_applicant", "lc_cbsa", "lc_cbp", "lc_other_cbsa"
ROLE_ACCOUNTS = {CBSA: "cbsa.lc", CBP: "cbp.lc", OTHER: "cbsa.lc2"}
PRESENCE_EVENTS = frozenset({"join", "rejoin", "drop", "leave", "left"})
# What the server says on its own, between the answers to what a socket sent.
CHATTER = frozenset({"waiting", "paired", "peer", "peer_state", "updated", "ended"})
APPROVE = {"verdict": "approve", "reason_codes": []}
AGREED = {"text_version": CONSENT_VERSION, "language": "en"}
OLD_TEXT = {"text_version": "1999-01-01", "language": "en"}


class Socket:
    """One socket of a party; every message it heard is kept."""

    def __init__(self, ws: ClientWebSocketResponse, role: str) -> None:
        self.ws = ws
        self.role = role
        self.heard: list[dict[str, Any]] = []

    async def say(self, scene: Scene, *messages: m.Message) -> list[str]:
        """Send ``messages``, then a probe; the answers up to the probe's, as ``joined``,
        ``answer`` or ``error:<code>`` (what the server says on its own left out)."""
        probe = scene.next_probe()
        for message in messages:
            await self.ws.send_str(m.encode(message))
        await self.ws.send_str(m.encode(m.Join(interview_id=probe)))
        answers: list[str] = []
        while True:
            message = json.loads(await self.ws.receive_str(timeout=20))
            self.heard.append(message)
            if probe in message.get("message", ""):
                return answers
            kind = message.get("type")
            if kind == "error":
                answers.append(f"error:{message.get('code')}")
            elif kind not in CHATTER:
                answers.append(str(kind))

    async def heard_of(self, kind: str, within: float = 10) -> bool:
        """Whether a message of ``kind`` came (or comes within ``within`` seconds)."""
        if any(message.get("type") == kind for message in self.heard):
            return True
        try:
            async with asyncio.timeout(within):
                while True:
                    message = json.loads(await self.ws.receive_str())
                    self.heard.append(message)
                    if message.get("type") == kind:
                        return True
        except TimeoutError:
            return False


class Battery:
    def __init__(self, scene: Scene, interview_id: str, offer: str) -> None:
        self.scene = scene
        self.world = scene.world
        self.interview_id = interview_id
        self.offer = m.Offer(sdp=offer)
        self.problems: list[str] = []
        self.sent = 0
        self._clients: dict[str, Client] = {}

    # --- acting -------------------------------------------------------------------------

    async def client(self, role: str) -> Client:
        if role not in self._clients:
            self._clients[role] = await self.world.client(self.scene.sessions[role])
        return self._clients[role]

    async def http(self, role: str, method: str, what: str, expect: set[int], **kwargs: Any) -> int:
        """``method`` on the interview's ``what`` (``consent``: the applicant's) as
        ``role``; a status outside ``expect`` is a problem."""
        path = (
            "/api/applicant/consent"
            if what == "consent"
            else f"/api/interviews/{self.interview_id}/{what}"
        )
        response = await (await self.client(role)).request(method, path, **kwargs)
        answer = await response.text()
        self.sent += 1
        if response.status not in expect or response.status >= 500:
            self.problems.append(f"{method} {what} as {role}: {response.status} {answer[:300]}")
        return response.status

    def decide(self, role: str, expect: set[int]) -> Awaitable[int]:
        return self.http(role, "POST", "decision", expect, json=APPROVE)

    def still(self, expect: set[int]) -> Awaitable[int]:
        headers = {"Content-Type": "image/jpeg"}
        return self.http(CBSA, "POST", "stills", expect, data=jpeg_image(), headers=headers)

    async def socket(self, role: str) -> Socket:
        ws = await self.scene.http.ws_connect(
            self.scene.url("/ws"), headers=self.scene.socket_headers(role, "none")
        )
        return Socket(ws, role)

    async def says(
        self, socket: Socket, messages: list[m.Message], expect: list[str] | set[str]
    ) -> None:
        """``expect``: the answers in order, or (a set) the answers each may get."""
        answers = await socket.say(self.scene, *messages)
        self.sent += len(messages)
        wrong = not set(answers) <= expect if isinstance(expect, set) else answers != expect
        if wrong or "error:internal_error" in answers:
            sent = [type(message).__name__ for message in messages]
            self.problems.append(f"{socket.role} sent {sent}: {answers}, not {expect}")

    # --- judging ------------------------------------------------------------------------

    async def stored(self) -> dict[str, Any]:
        """What the store and the live stills hold of the interview, but who is
        connected."""
        store = self.world.store
        interview = await store.interviews.get(self.interview_id)
        life = json.loads(interview_state.encode(interview.life))
        del life["presence"]
        events = await store.events.for_interview(self.interview_id)
        decisions = await store.decisions.for_interview(self.interview_id)
        return {
            "life": life,
            "state": interview.state,
            "officers": (interview.cbsa_officer_id, interview.cbp_officer_id),
            "call_ended_at": interview.call_ended_at,
            "events": [(e.kind, e.seat) for e in events if e.kind not in PRESENCE_EVENTS],
            "decisions": {a: (d.verdict, d.officer_id) for a, d in decisions.items()},
            "stills": self.world.server.app[STILLS].listing(self.interview_id),
        }

    async def refused_changing_nothing(
        self, moment: str, attempts: Callable[[], Awaitable[object]]
    ) -> None:
        before = await self.stored()
        await attempts()
        after = await self.stored()
        if after != before:
            self.problems.append(f"{moment}: refusals changed {before} into {after}")

    async def events(self, kind: str) -> int:
        stored = await self.world.store.events.for_interview(self.interview_id)
        return sum(1 for event in stored if event.kind == kind)

    async def applicant_connected(self) -> bool:
        for _ in range(100):
            life = (await self.world.store.interviews.get(self.interview_id)).life
            if life.presence[Party.APPLICANT] is Presence.CONNECTED:
                return True
            await asyncio.sleep(0.1)
        return False

    # --- the interview's life, step by step ----------------------------------------------

    async def run(self) -> None:
        await self.refused_changing_nothing("checked in only", self.before_consent)
        applicant, cbsa, cbp = await self.officers_take()
        await self.refused_changing_nothing(
            "officers seated, applicant not in", lambda: self.before_the_call(applicant, cbsa)
        )
        second_tab = await self.consent_and_ready(applicant)
        await second_tab.ws.close()
        await self.in_the_call(applicant)
        await self.race(cbsa, cbp)
        await self.refused_changing_nothing(
            "after the end", lambda: self.after_the_end(applicant, cbsa)
        )
        await self.last_decisions()
        await self.refused_changing_nothing(
            "closed", lambda: self.after_closing(applicant, cbsa, cbp)
        )
        for socket in (applicant, cbsa, cbp):
            await socket.ws.close()

    async def before_consent(self) -> None:
        """Checked in, nothing more: the applicant's socket is refused every step of the
        call, the officers everything but a take."""
        socket = await self.socket(APPLICANT)
        ready = m.Ready(interview_id=self.interview_id)
        await self.says(
            socket,
            [ready, ready, m.Join(interview_id=self.interview_id), self.offer, m.End(), m.Leave()],
            ["error:conflict"] * 3 + ["error:not_in_room"] * 3,
        )
        await socket.ws.close()
        await asyncio.gather(
            self.http(APPLICANT, "POST", "consent", {409}, json=OLD_TEXT),
            self.decide(CBSA, {403}),
            self.still({403}),
            self.http(CBSA, "POST", "take-decision", {409}),
            self.http(CBP, "PUT", "draft", {403}, json=APPROVE),
        )

    async def officers_take(self) -> tuple[Socket, Socket, Socket]:
        """Both officers take it, each twice at once; another CBSA officer cannot. Their
        sockets join its call (they may wait in it); the applicant's socket is open."""
        await asyncio.gather(
            *(self.http(role, "POST", "take", {200}) for role in (CBSA, CBP, CBSA, CBP))
        )
        await self.http(OTHER, "POST", "take", {403, 409})
        if await self.events("seat") != 2:
            self.problems.append(f"two officers' double takes: {await self.events('seat')} seats")
        cbsa, cbp = await self.socket(CBSA), await self.socket(CBP)
        for socket in (cbsa, cbp):
            await self.says(socket, [m.Join(interview_id=self.interview_id)], ["joined"])
        return await self.socket(APPLICANT), cbsa, cbp

    async def before_the_call(self, applicant: Socket, cbsa: Socket) -> None:
        """No decision, still, End or take-over before the applicant has joined a call;
        the applicant cannot join before consenting."""
        await asyncio.gather(
            self.decide(CBSA, {409}),
            self.decide(CBP, {409}),
            self.decide(CBP, {409}),
            self.still({409}),
            self.http(OTHER, "POST", "take-decision", {403, 409}),
            self.http(CBSA, "POST", "take-decision", {200}),  # the holder's: a repeat
            self.says(
                cbsa,
                [m.End(), m.End(), m.Ready(interview_id=self.interview_id)],
                ["error:conflict", "error:conflict", "error:forbidden"],
            ),
            self.says(
                applicant,
                [m.Join(interview_id=self.interview_id), m.Ready(interview_id=self.interview_id)],
                ["error:conflict", "error:conflict"],
            ),
        )

    async def consent_and_ready(self, applicant: Socket) -> Socket:
        """Consent three times at once, then ready from two tabs at once: one consent, one
        place in the queue, one start of the call."""
        await asyncio.gather(
            *(self.http(APPLICANT, "POST", "consent", {201}, json=AGREED) for _ in range(3))
        )
        await self.http(APPLICANT, "POST", "consent", {201}, json=OLD_TEXT)  # a repeat
        second_tab = await self.socket(APPLICANT)
        ready = m.Ready(interview_id=self.interview_id)
        await asyncio.gather(
            self.says(applicant, [ready, ready], []), self.says(second_tab, [ready], [])
        )
        for kind in ("consent", "ready", "call-start"):
            if (count := await self.events(kind)) != 1:
                self.problems.append(f"repeated consent and ready: {count} {kind} events")
        if not await applicant.heard_of("paired"):
            self.problems.append("the applicant was not told the call started")
        return second_tab

    async def in_the_call(self, applicant: Socket) -> None:
        """The applicant joins (twice), offers, and may not end the call."""
        join = m.Join(interview_id=self.interview_id)
        await self.says(applicant, [join, join, self.offer], ["joined", "joined", "answer"])
        await self.says(applicant, [m.End()], ["error:forbidden"])
        if not await self.applicant_connected():
            self.problems.append("the applicant's join was not stored")
        await self.http(OTHER, "POST", "take-decision", {403, 409})

    async def race(self, cbsa: Socket, cbp: Socket) -> None:
        """A still (double-clicked) and CBP's decision at the moment both officers end
        the call: the call ends once, for both; what was accepted is stored once."""
        statuses = await asyncio.gather(
            self.still({200, 201, 409}),
            self.still({200, 201, 409}),
            self.decide(CBP, {201, 409}),
            self.ending(cbsa, cbp),
        )
        stills, decisions = statuses[:2], statuses[2:3]
        for socket in (cbsa, cbp):
            if not await socket.heard_of("ended"):
                self.problems.append(f"{socket.role} was not told the call ended")
        kept = await self.events("still")
        counts = {kind: await self.events(kind) for kind in ("end", "decision")}
        rows = len(await self.world.store.decisions.for_interview(self.interview_id))
        if (
            counts["end"] != 1
            or counts["decision"] != decisions.count(201)
            or rows != counts["decision"]
        ):
            self.problems.append(f"race: {counts}, {rows} decision rows for {statuses}")
        listed = len(self.world.server.app[STILLS].listing(self.interview_id))
        if kept != stills.count(201) or listed != kept or (200 in stills and not kept):
            self.problems.append(f"race: stills answered {stills}, {kept} recorded, {listed} kept")

    async def ending(self, cbsa: Socket, cbp: Socket) -> None:
        """Both officers end the call once the still's requests are sent (a socket's
        message would otherwise overtake requests that open connections)."""
        await asyncio.sleep(0)
        # The later End: a repeat, or refused as the call is no longer on.
        await asyncio.gather(
            self.says(cbsa, [m.End()], {"error:conflict"}),
            self.says(cbp, [m.End()], {"error:conflict"}),
        )

    async def after_the_end(self, applicant: Socket, cbsa: Socket) -> None:
        """Nothing reopens the call: no join, offer, ready, End, still or take-over; the
        agency that decided cannot again; consent again is a repeat."""
        decided = await self.world.store.decisions.for_interview(self.interview_id)
        deciders = [CBSA if agency is Agency.CBSA else CBP for agency in decided]
        join = m.Join(interview_id=self.interview_id)
        await asyncio.gather(
            self.says(
                applicant,
                [join, self.offer, m.Ready(interview_id=self.interview_id), m.Leave()],
                ["error:conflict"] * 3,
            ),
            self.says(cbsa, [m.End(), join, m.End()], ["error:conflict"] * 3),
            self.still({409}),
            self.http(OTHER, "POST", "take-decision", {403, 409}),
            self.http(APPLICANT, "POST", "consent", {201}, json=AGREED),
            *(self.decide(role, {409}) for role in deciders),
            *(self.http(role, "PUT", "draft", {409}, json=APPROVE) for role in deciders),
        )

    async def last_decisions(self) -> None:
        decided = await self.world.store.decisions.for_interview(self.interview_id)
        for role, agency in ((CBSA, Agency.CBSA), (CBP, Agency.CBP)):
            if agency not in decided:
                await self.decide(role, {201})
        phase = (await self.world.store.interviews.get(self.interview_id)).life.phase
        if phase is not Phase.CLOSED:
            self.problems.append(f"both agencies decided, and the interview is {phase}")

    async def after_closing(self, applicant: Socket, cbsa: Socket, cbp: Socket) -> None:
        """A closed interview refuses everything: consent, ready, join, End, stills,
        decisions, takes and take-overs, drafts."""
        join, ready = (
            m.Join(interview_id=self.interview_id),
            m.Ready(interview_id=self.interview_id),
        )
        await asyncio.gather(
            self.http(APPLICANT, "POST", "consent", {409}, json=AGREED),
            self.http(APPLICANT, "POST", "consent", {409}, json=OLD_TEXT),
            self.says(applicant, [ready, join, m.Leave()], ["error:conflict"] * 2),
            self.says(cbsa, [m.End(), join], ["error:conflict"] * 2),
            self.says(cbp, [join, ready], ["error:conflict", "error:forbidden"]),
            self.still({409}),
            self.decide(CBSA, {409}),
            self.decide(CBP, {409}),
            self.http(CBSA, "POST", "take-decision", {409}),
            self.http(OTHER, "POST", "take-decision", {403, 409}),
            self.http(OTHER, "POST", "take", {403, 409}),
            self.http(CBSA, "PUT", "draft", {409}, json=APPROVE),
        )


async def lifecycle_attack(scene: Scene) -> tuple[list[str], int]:
    """The battery on the scene's lifecycle interview: what went wrong, and how many
    inputs it sent."""
    battery = Battery(scene, scene.lifecycle_interview, scene.base_sdp)
    try:
        await battery.run()
    except Exception as exc:  # reported with what went wrong before it
        battery.problems.append(f"the battery stopped: {exc!r}")
    return battery.problems, battery.sent
