"""The browsers' WebSocket endpoint: one `Connection` per socket, speaking the signalling
protocol (`signalling.messages`) to the media plane and the waiting room.

Who may sit where is decided here, from the HTTP session: an applicant only in their own
interview, an officer only in the seat of their agency in an interview assigned to them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from common.errors import Conflict, Forbidden, NexusError
from common.logs import interview_context
from common.names import Agency, ParticipantId, RoomId, Seat
from media.interview import InterviewEvent
from signalling import messages as m
from signalling.errors import NotInRoom, TooManySockets
from signalling.lobby import Lobby
from signalling.waiting_room import RECENT_INTERVIEWS, WaitingApplicant

from .. import interview_actions, turn
from ..appkeys import (
    CATALOGS,
    LIVES,
    LOBBY,
    ROOMS,
    SETTINGS,
    SOCKET_PRINCIPAL,
    SOCKET_SESSIONS,
    SOCKETS,
    STORE,
)
from ..auth import Principal
from ..interview_state import Life, Party, Phase
from ..lives import Lives, need_of
from ..logs import loggable_interview_id
from ..media_plane import (
    MediaMoved,
    MediaPlane,
    RecordUpdate,
    RoomHandle,
    RoomItem,
    SeatMediaState,
    SeatPath,
    SeatReport,
)
from ..settings import Settings
from ..store import Store
from ..store.sessions import session_hash
from ..types import InterviewMode, Role, utc_now
from .applicant import use_application_language
from .http import current, session_id_of, session_of, translator_of

log = logging.getLogger(__name__)

SESSION_CHECK_SECONDS = 15.0
SIGNED_OUT_CLOSE_CODE = 4401
"""Close code of a socket whose sign-in ended: the page should sign in again, not retry."""
MAX_ERRORS = 20  # a client that keeps sending garbage is disconnected
# A sign-in's sockets: one per tab, and someone may have a tab or two open beside the call.
# The socket over the limit is refused rather than the oldest closed: the pages reopen a
# closed socket and join again, so closing the oldest would set two tabs taking the seat
# from each other in turn. A reloaded tab is not refused: the browser closes the old page's
# socket as it unloads, and the heartbeat soon reaps the socket of a tab that vanished.
MAX_SOCKETS_PER_PRINCIPAL = 4


class Connection:
    def __init__(
        self,
        principal: Principal,
        store: Store,
        rooms: MediaPlane,
        lobby: Lobby,
        ws: web.WebSocketResponse,
        lives: Lives,
        settings: Settings,
    ) -> None:
        self.principal = principal
        self._settings = settings  # for the TURN credentials each join and offer gets
        self._lives = lives
        self._lobby = lobby
        self._applicant_in_lobby: str | None = None
        self._officer_in_lobby: tuple[int, Agency] | None = None
        self._store = store
        self._rooms = rooms
        self._ws = ws
        self.room: RoomHandle | None = None
        self.seat: Seat | None = None
        self._participant: ParticipantId | None = None  # the connection this socket made
        self._stop_listening: list[Callable[[], None]] = []
        self._hearing: set[RoomId] = set()
        # None: close the socket, the page reconnects (the call's media moved)
        self._outbox: asyncio.Queue[m.Message | None] = asyncio.Queue(256)

    async def handle(self, message: m.ClientMessage) -> None:
        match message:
            case m.Join(interview_id=interview_id):
                await self._join(interview_id)
            case m.Offer(sdp=sdp):
                room, seat = self._seated()
                await self._allowed(room.id, interview_actions.Join(Party(seat.value)))
                # The worker's end gets credentials of its own, fresh for each connection,
                # named apart from the page's in the relay's logs.
                relays = turn.media_relays(
                    self._settings, f"{room.id}-{seat.value}-media", utc_now()
                )
                info = await self._seat_info()
                answer, self._participant = await room.join(seat, sdp, info, relays)
                await self.send(m.Answer(sdp=answer))
            case m.Candidate(candidate=candidate, sdp_mid=mid, sdp_mline_index=index):
                room, seat = self._seated()
                if room.participant(seat) is None:
                    raise NotInRoom("send the offer before candidates")
                await room.add_candidate(seat, candidate, mid, index)
            case m.MediaState(audio=audio, video=video):
                room, seat = self._seated()
                self._rooms.broadcast_state(room.id, SeatMediaState(seat, audio, video))
            case m.ConnectionPath(path=path, protocol=protocol):
                if self.room is None or self.seat is None:
                    raise NotInRoom("join an interview first")
                # A report racing the call's end is no error: the page measured it in good
                # faith, and the seats still in the room (none, once it ended) hear of it.
                self._rooms.broadcast_state(self.room.id, SeatPath(self.seat, path, protocol))
                # for whoever keeps the service up: how often calls need the relay
                log.info("the %s's media goes %s (%s)", self.seat, path, protocol or "-")
            case m.Leave():
                if self.room is None:
                    raise NotInRoom("join an interview first")
                on = self._rooms.current(self.room.id)
                if on is not None and self.seat is not None:
                    await on.leave(self.seat)  # leaving a call that ended changes nothing
            case m.End():
                await self._end()
            case m.Ready(interview_id=interview_id):
                await self._ready(interview_id)
            case m.Available(available=available):
                account_id, agency = self.principal.officer_seat()
                await self._store.accounts.set_available(account_id, available)
                self._officer_in_lobby = (account_id, agency)
                await self._learn_interview_lengths()
                await self._lobby.officer_available(account_id, agency, available, self.queue)

    def about(self, message: m.ClientMessage) -> str | None:
        """The interview ``message`` is about, for the lines logged while it is handled:
        the one it names (if that has an interview id's form), else this socket's call."""
        named = getattr(message, "interview_id", None)
        if isinstance(named, str):
            return loggable_interview_id(named)
        return self.room.id if self.room is not None else None

    async def _allowed(self, interview_id: str, action: interview_actions.Action) -> Life:
        """The interview's life, if ``action`` may happen now; else a 409 that says why."""
        return await self._lives.check(interview_id, action)

    async def _act(
        self, interview_id: str, action: interview_actions.Action, **detail: str
    ) -> Life:
        return (await self._lives.act(interview_id, action, detail=detail)).life

    async def _end(self) -> None:
        """An officer ends the call for everyone; in two-step mode the CBSA officer ends
        the first step and the applicant goes on to wait for a CBP officer. Each agency
        still decides afterwards."""
        room, seat = self._seated()
        if seat is Seat.APPLICANT:
            raise Forbidden("only an officer can end the interview; use leave")
        agency = Agency(seat.value.upper())
        life = await self._allowed(room.id, interview_actions.End(agency))
        two_step_cbsa = life.mode is InterviewMode.TWO_STEP and life.step == Agency.CBSA.value
        await self._act(
            room.id,
            interview_actions.End(agency),
            by=seat.value,
            next="cbp" if two_step_cbsa else "done",
        )

    async def _ready(self, interview_id: str) -> None:
        """An applicant who passed check-in takes their place in the waiting room (or,
        if their officers are seated already, goes straight into the call)."""
        if self.principal.own_interview() != interview_id:
            raise Forbidden("this is not your interview")
        interview = await self._store.interviews.get(interview_id)
        life = await self._act(interview_id, interview_actions.Ready())
        self._hear_room(RoomId(interview_id))  # the end of a step reaches the waiting page
        if life.phase is Phase.IN_CALL:
            self.queue(m.Paired(interview_id=interview_id, seat=Seat.APPLICANT))
            return
        need = need_of(life)
        if life.phase is not Phase.WAITING or need is None:
            return  # the CBP step opens once CBSA has decided: told then
        application = await self._store.applications.get(interview.application_id)
        waiting = WaitingApplicant(
            interview_id,
            need,
            interview.window_start,
            application.applied_on,
            application.card_expiry,
        )
        self._applicant_in_lobby = interview_id
        await self._learn_interview_lengths()
        await self._lobby.applicant_ready(waiting, self.queue)

    def _hear_room(self, room_id: RoomId) -> None:
        if room_id not in self._hearing:
            self._hearing.add(room_id)
            self._stop_listening.append(self._rooms.listen(room_id, self._on_room))

    async def _learn_interview_lengths(self) -> None:
        """Estimates follow the latest interviews' lengths (read as someone enters the
        waiting room or an officer comes back from an interview)."""
        lengths = await self._store.events.recent_call_seconds(RECENT_INTERVIEWS)
        self._lobby.learn_interview_lengths(lengths)

    async def _join(self, interview_id: str) -> None:
        interview = await self._store.interviews.get(interview_id)
        if self.principal.role is Role.APPLICANT:
            if self.principal.own_interview() != interview.id:
                raise Forbidden("this is not your interview")
            seat = Seat.APPLICANT
        else:
            account_id, agency = self.principal.officer_seat()
            if interview.officer_for(agency) != account_id:
                raise Forbidden(f"you are not the {agency} officer assigned to {interview.id}")
            seat = Seat.of(agency)
        await self._allowed(interview.id, interview_actions.Join(Party(seat.value)))
        room = await self._rooms.open(RoomId(interview.id))
        self._hear_room(room.id)
        self.room, self.seat = room, seat
        present = [other.value for other in room.present]
        # Fresh credentials at every join and rejoin: each is good for opening a relay
        # for a few minutes only, and names the interview and seat in the relay's logs.
        relays = turn.ice_servers(self._settings, f"{interview.id}-{seat.value}", utc_now())
        ice_servers = [
            m.IceServer(urls=r["urls"], username=r["username"], credential=r["credential"])
            for r in relays
        ]
        await self.send(
            m.Joined(interview_id=interview.id, seat=seat, present=present, ice_servers=ice_servers)
        )
        for state in self._rooms.states(room.id):
            if state.seat is not seat:
                await self.send(_told(state))

    async def _seat_info(self) -> dict[str, object]:
        """What the join event records: officers' agency and working country."""
        if self.principal.role is Role.APPLICANT:
            return {"role": "applicant"}
        account_id, agency = self.principal.officer_seat()
        account = await self._store.accounts.get(account_id)
        return {
            "role": "officer",
            "agency": agency.value,
            "account": account_id,
            "country": account.country,
        }

    def _seated(self) -> tuple[RoomHandle, Seat]:
        """The call this socket joined, if it is still on. A call that emptied is opened
        again by the next ``join``, never by other messages: nothing reopens an ended one."""
        if self.room is None or self.seat is None:
            raise NotInRoom("join an interview first")
        room = self._rooms.current(self.room.id)
        if room is None:
            raise Conflict("this call is not on; join the interview again")
        self.room = room
        return room, self.seat

    def _on_room(self, item: RoomItem) -> None:
        if isinstance(item, MediaMoved):
            if self.seat is not None:
                self._close_soon()
            return
        if isinstance(item, InterviewEvent) and item.kind == "end" and "by" in item.detail:
            self.queue(m.Ended(by=item.detail["by"], next=item.detail.get("next", "done")))
            return
        if self.seat is None:
            return  # a waiting page hears only of the end of a step
        if isinstance(item, RecordUpdate):
            if self.seat is not Seat.APPLICANT:  # officers' business only
                self.queue(m.Updated(what=item.what))
            return
        if item.seat is None or item.seat is self.seat:
            return
        if isinstance(item, SeatMediaState | SeatPath):
            self.queue(_told(item))
        else:
            self.queue(m.Peer(seat=item.seat, event=item.kind))

    def queue(self, message: m.Message) -> None:
        """Send soon, without waiting (room and lobby updates)."""
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("dropping an update for a slow client")

    def _close_soon(self) -> None:
        """After what is queued, close the socket as a server restart would: the page
        connects again and joins, and the call is placed on a live media worker."""
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            log.warning("a slow client's socket could not be told its call moved")

    async def pump(self) -> None:
        """Send queued room updates as they come."""
        while (message := await self._outbox.get()) is not None:
            await self.send(message)
        await self._ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"call media moved")

    async def send(self, message: m.Message) -> None:
        if self._ws.closed:
            return
        try:
            await self._ws.send_str(m.encode(message))
        except ConnectionResetError:
            # The page went as we answered it: its socket's close is handled where it
            # is read.
            log.debug("a message to a closing socket was dropped")

    async def leave_call(self) -> None:
        """Give up the seat and its peer connection at once, as an ended sign-in must."""
        if self.room is not None and self.seat is not None and not self.room.closed:
            await self.room.leave(self.seat)

    async def close(self) -> None:
        for stop in self._stop_listening:
            stop()
        if self.room is not None and self.seat is not None and self._participant is not None:
            # closed without `leave`: likely the tab went (the room waits for its media too)
            self.room.socket_closed(self.seat, self._participant)
        if self._applicant_in_lobby is not None:
            await self._lobby.applicant_gone(self._applicant_in_lobby, self.queue)
        if self._officer_in_lobby is not None:
            await self._lobby.officer_gone(*self._officer_in_lobby)


def _told(report: SeatReport) -> m.Message:
    """What the other seats' pages are told of a seat's own report."""
    if isinstance(report, SeatPath):
        return m.PeerPath(seat=report.seat, path=report.path, protocol=report.protocol)
    return m.PeerState(seat=report.seat, audio=report.audio, video=report.video)


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: tell every client the server is going away."""
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def _refuse(ws: web.WebSocketResponse, refusal: NexusError, text: str, reason: str) -> None:
    """Say why in an ``error`` the page can show, then close with 1008 and a short reason
    (a socket refused at the HTTP upgrade reaches a page as a bare 1006, with neither)."""
    await ws.send_str(m.encode(m.Error(code=refusal.code, message=text)))
    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())


def _same_origin(request: web.Request) -> bool:
    """Browsers always send Origin on WebSockets; it must be ours (no cross-site sockets)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = {urlsplit(request.app[SETTINGS].public_url).netloc, request.host}
    return urlsplit(origin).netloc in allowed


def _open_sockets(sockets: weakref.WeakSet[web.WebSocketResponse], label: str) -> int:
    """How many open sockets the principal with ``label`` holds (a scan: sockets open far
    less often than they carry messages, and the limit keeps the set small)."""
    return sum(1 for ws in sockets if not ws.closed and ws.get(SOCKET_PRINCIPAL) == label)


async def websocket(request: web.Request) -> web.StreamResponse:
    principal = current(request)
    if not _same_origin(request):
        raise Forbidden("this socket must be opened from our own pages")
    if principal.role is Role.APPLICANT:
        own = await request.app[STORE].interviews.get(principal.own_interview())
        await use_application_language(request, own)
    translate = await translator_of(request)  # the page's language when it connected
    # A frame up to 4x the limit still gets a readable error from decode_client.
    ws = web.WebSocketResponse(max_msg_size=4 * m.MAX_MESSAGE_BYTES, heartbeat=20)
    await ws.prepare(request)
    # Counted and added with no await in between, so sockets opened at once all count.
    sockets = request.app[SOCKETS]
    if _open_sockets(sockets, principal.label) >= MAX_SOCKETS_PER_PRINCIPAL:
        refusal = TooManySockets(
            "this sign-in already has {limit} connections open, the most allowed: close "
            "another tab or window of this site, then reload this page",
            limit=MAX_SOCKETS_PER_PRINCIPAL,
        )
        await _refuse(ws, refusal, translate.error(refusal), "too many sockets for this sign-in")
        return ws
    ws[SOCKET_PRINCIPAL] = principal.label
    sockets.add(ws)
    connection = Connection(
        principal,
        request.app[STORE],
        request.app[ROOMS],
        request.app[LOBBY],
        ws,
        request.app[LIVES],
        request.app[SETTINGS],
    )
    catalogs = request.app[CATALOGS]

    async def sign_in_ended() -> None:
        text = translate("your sign-in has ended; sign in again to go on")
        await connection.send(m.Error(code="signed_out", message=text))
        await connection.leave_call()
        await ws.close(code=SIGNED_OUT_CLOSE_CODE, message=b"sign-in ended")

    session_id = session_id_of(await session_of(request))
    stop_watching = (
        request.app[SOCKET_SESSIONS].watch(session_hash(session_id), sign_in_ended)
        if session_id is not None
        else lambda: None
    )
    pump = asyncio.ensure_future(connection.pump())
    check = asyncio.ensure_future(_keep_checking(request.app[STORE], session_id, sign_in_ended))
    errors = 0
    try:
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                if frame.type is WSMsgType.ERROR:
                    break
                await connection.send(
                    m.Error(code="protocol_error", message=translate("send JSON text messages"))
                )
                continue
            try:
                message = m.decode_client(frame.data)
                if isinstance(message, m.Language):
                    translate = catalogs.translator(message.language)
                    continue
                with interview_context(connection.about(message)):
                    await connection.handle(message)
            except NexusError as exc:
                errors += 1
                text = translate.error(exc)
                await connection.send(m.Error(code=exc.code, message=text))
            except Exception:
                errors += 1
                with interview_context(connection.about(message)):
                    log.exception("signalling message failed for %s", principal.label)
                text = translate("something went wrong on our side")
                await connection.send(m.Error(code="internal_error", message=text))
            if errors >= MAX_ERRORS:
                await ws.close(code=1008, message=b"too many bad messages")
    finally:
        stop_watching()
        for task in (pump, check):
            task.cancel()
        # Shielded: a lost connection may cancel this handler (aiohttp's
        # handler_cancellation), and the lobby and the room must still hear the socket
        # went, or a closed tab would keep (or be sent) the applicant's place.
        await asyncio.shield(_wind_up(connection, pump, check))
    return ws


async def _wind_up(connection: Connection, *tasks: asyncio.Task[None]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
    await connection.close()


async def _keep_checking(
    store: Store, session_id: str | None, ended: Callable[[], Awaitable[None]]
) -> None:
    """While the socket is open it counts as activity (an officer in a call is never
    signed out for being idle), and a sign-in ended by another process (an operator's
    command) ends the socket and its call within one interval."""
    while True:
        await asyncio.sleep(SESSION_CHECK_SECONDS)
        if session_id is None or await store.sessions.principal(session_id) is None:
            await ended()
            return
