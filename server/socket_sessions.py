"""Open sockets by the session that opened them, so that ending a session (signing out, a
lock, a revocation in this process) closes its sockets and calls at once. Sessions ended by
another process (an operator's command) are noticed by each socket's own periodic check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

Closer = Callable[[], Awaitable[None]]


class SocketSessions:
    def __init__(self) -> None:
        self._closers: dict[bytes, dict[int, Closer]] = {}
        self._next = 0

    def watch(self, session_hash: bytes, close: Closer) -> Callable[[], None]:
        """Call ``close`` when the session ends; returns what stops watching."""
        self._next += 1
        key = self._next
        self._closers.setdefault(session_hash, {})[key] = close

        def stop() -> None:
            closers = self._closers.get(session_hash, {})
            closers.pop(key, None)
            if not closers:
                self._closers.pop(session_hash, None)

        return stop

    async def close(self, ended: Iterable[bytes]) -> None:
        for session_hash in ended:
            for close in list(self._closers.pop(session_hash, {}).values()):
                await close()
