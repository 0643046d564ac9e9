"""The browsers' WebSocket endpoint, the waiting room and pairing: the control plane's
side of a call (the call itself runs in the media plane, `media`)."""
