"""The server's Prometheus metrics, in a registry of the app's own (never the library's
global one): what the operators' monitoring scrapes from the operations listener
(`server.health`), never from the public pages' port.

Most figures are read when a scrape comes, from what the server keeps anyway: the media
plane's rooms and each worker's last `Load` (its traffic counters ride on it, labelled by
worker), the sign-in's counts, the waiting room's queue, and, from the store, the
invitations by status and the records that failed their check. Only what happens at one
moment is observed as it happens: how long a seat's offer took to be answered, and how
long a sealed segment took to arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signalling.lobby import Lobby

from .media_plane import DEAD_AFTER_SECONDS, MediaPlane
from .sign_in import StaffSignIn
from .store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
INVITATION_STATUSES = ("queued", "sending", "sent", "failed", "bounced", "dropped")
"""Every status an invitation row can have: each is a series, at 0 when none has it."""
SEAL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """The app's registry: histograms fed as things happen, the rest read at scrape."""

    def __init__(self, plane: MediaPlane, sign_in: StaffSignIn, lobby: Lobby, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.join_seconds = Histogram(
            "nexus_join_seconds",
            "Seconds from a participant's offer to the media worker's answer.",
            buckets=JOIN_BUCKETS,
            registry=self.registry,
        )
        self.seal_lag_seconds = Histogram(
            "nexus_recording_seal_lag_seconds",
            "Seconds from a recorded segment's last media to its seal reaching the server.",
            buckets=SEAL_BUCKETS,
            registry=self.registry,
        )
        plane.on_joined = self.join_seconds.observe
        plane.on_sealed = self.seal_lag_seconds.observe
        self._store = store
        self._stored = _Stored()
        self.registry.register(_Live(plane, sign_in, lobby, self._stored))

    async def scrape(self) -> bytes:
        """The exposition text, with the store's figures read now."""
        await self._stored.refresh(self._store)
        return generate_latest(self.registry)


class _Stored:
    """The store's figures, read before each scrape (collectors cannot await)."""

    def __init__(self) -> None:
        self.invitations: dict[str, int] = {}
        self.verification_failures = 0

    async def refresh(self, store: Store) -> None:
        self.invitations = await store.invitations.counts()
        self.verification_failures = await store.record_checks.failed_count()


class _Live(Collector):
    def __init__(
        self, plane: MediaPlane, sign_in: StaffSignIn, lobby: Lobby, stored: _Stored
    ) -> None:
        self._plane = plane
        self._sign_in = sign_in
        self._lobby = lobby
        self._stored = stored

    def collect(self) -> Iterable[Metric]:
        yield from self._server()
        yield from self._workers()

    def _server(self) -> Iterator[Metric]:
        yield _gauge("nexus_rooms", "Calls on now, on every worker.", len(self._plane))
        yield _gauge(
            "nexus_draining", "1 while the server drains (no new calls).", self._plane.draining
        )
        yield _gauge(
            "nexus_waiting_room_queue", "Applicants in the waiting room.", len(self._lobby.room)
        )
        yield _counter("nexus_sign_in_failures", "Staff sign-ins refused.", self._sign_in.failures)
        yield _counter(
            "nexus_sign_in_lockouts", "Accounts locked by failed sign-ins.", self._sign_in.lockouts
        )
        yield _gauge(
            "nexus_verification_failures",
            "Session records that failed their latest check.",
            self._stored.verification_failures,
        )
        yield _counter(
            "nexus_recording_failures",
            "Recordings that stopped on a worker (the calls went on).",
            self._plane.recording_failures,
        )
        invitations = GaugeMetricFamily(
            "nexus_invitations", "E-mail invitations by status.", labels=["status"]
        )
        counted = self._stored.invitations
        for status in sorted(set(INVITATION_STATUSES) | counted.keys()):
            invitations.add_metric([status], counted.get(status, 0))
        yield invitations

    def _workers(self) -> Iterator[Metric]:
        label = ["worker"]
        up = GaugeMetricFamily(
            "nexus_worker_up", "1 if the worker reported within its limit.", labels=label
        )
        families = {
            name: GaugeMetricFamily(name, text, labels=label)
            for name, text in (
                ("nexus_worker_rooms", "Rooms the worker carries."),
                ("nexus_worker_participants", "Seats held on the worker."),
                ("nexus_worker_cpu", "CPU-seconds per second the worker used."),
                ("nexus_worker_rtt_seconds", "Mean round-trip time of its connections."),
                ("nexus_worker_report_age_seconds", "Seconds since the worker last reported."),
            )
        }
        counters = {
            name: CounterMetricFamily(name, text, labels=label)
            for name, text in (
                ("nexus_forwarded_packets", "RTP packets forwarded to subscribers."),
                ("nexus_forwarded_bytes", "RTP payload bytes forwarded to subscribers."),
                ("nexus_received_packets", "RTP packets received from publishers."),
                ("nexus_lost_packets", "RTP packets publishers sent that never arrived."),
                ("nexus_nacks", "Packets subscribers asked again for (NACK) and got."),
                ("nexus_plis", "Keyframe requests (PLI) sent to publishers."),
                ("nexus_recording_bytes", "Sealed recording bytes the worker sent."),
            )
        }
        for link in self._plane.live():
            name = [link.name]
            silent = link.silent_for()
            up.add_metric(name, 1 if silent <= DEAD_AFTER_SECONDS else 0)
            families["nexus_worker_report_age_seconds"].add_metric(name, silent)
            load = link.load
            if load is None:
                continue
            families["nexus_worker_rooms"].add_metric(name, load.rooms)
            families["nexus_worker_participants"].add_metric(name, load.participants)
            families["nexus_worker_cpu"].add_metric(name, load.cpu)
            traffic = load.traffic
            if traffic is None:
                continue
            if traffic.rtt_seconds is not None:
                families["nexus_worker_rtt_seconds"].add_metric(name, traffic.rtt_seconds)
            for metric, value in (
                ("nexus_forwarded_packets", traffic.packets_forwarded),
                ("nexus_forwarded_bytes", traffic.bytes_forwarded),
                ("nexus_received_packets", traffic.packets_received),
                ("nexus_lost_packets", traffic.packets_lost),
                ("nexus_nacks", traffic.nacks),
                ("nexus_plis", traffic.plis),
                ("nexus_recording_bytes", traffic.recording_bytes),
            ):
                counters[metric].add_metric(name, value)
        yield up
        yield from families.values()
        yield from counters.values()


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=float(value))
