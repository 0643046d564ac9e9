"""The media plane: rooms, participants, forwarding of encoded media and the recorder's
feed, run by media workers (`media.worker`) that the control plane drives through the
media-plane protocol (`media.protocol`). Nothing here imports the control plane."""
