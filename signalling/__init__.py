"""WebSocket signalling, waiting room and pairing, interview rooms (see issue #3)."""
