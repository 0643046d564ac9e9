"""The VP8 RTP payload descriptor (RFC 7741 section 4.2), read and rewritten in place.

A forwarding server needs three things from it: whether a packet starts a keyframe (a
slot may only start there), and where the picture id and TL0PICIDX sit, so that a
subscriber sees them continue across a change of publisher instead of jumping back.

    X|R|N|S|R|PID      first byte; X: an extension byte follows, S: partition start
    I|L|T|K|RSV        if X; I: picture id, L: TL0PICIDX, T or K: a TID/KEYIDX byte
    M|PictureID        if I; M: the picture id is 15 bits over two bytes, else 7 bits
    TL0PICIDX          if L
    TID|Y|KEYIDX       if T or K
    VP8 payload        whose first byte's bit 0 (P) is 0 in a keyframe, at a partition start
"""

from __future__ import annotations

from dataclasses import dataclass

PICTURE_ID_7, PICTURE_ID_15 = 0x80, 0x8000  # the id spaces of a short and a long picture id


@dataclass(frozen=True, slots=True)
class PictureIds:
    """Where a packet's picture id and TL0PICIDX are, and their values."""

    picture_id: int | None
    picture_id_at: int
    long_picture_id: bool
    tl0: int | None
    tl0_at: int


NO_IDS = PictureIds(None, 0, False, None, 0)


def starts_keyframe(payload: bytes) -> bool:
    """The first packet of a VP8 keyframe: S=1, partition index 0, and P=0 in the VP8
    payload header after the descriptor."""
    if len(payload) < 2 or payload[0] & 0x17 != 0x10:
        return False
    at = 1
    if payload[0] & 0x80:
        extension = payload[1]
        at = 2
        if extension & 0x80:
            if at >= len(payload):
                return False
            at += 2 if payload[at] & 0x80 else 1
        if extension & 0x40:
            at += 1
        if extension & 0x30:
            at += 1
    return at < len(payload) and not payload[at] & 0x01


def picture_ids(payload: bytes) -> PictureIds:
    """The picture id and TL0PICIDX of a packet, or `NO_IDS` when it carries neither (or
    is too short to say)."""
    if len(payload) < 2 or not payload[0] & 0x80:
        return NO_IDS
    extension = payload[1]
    at = 2
    picture_id: int | None = None
    picture_id_at, long_id = 0, False
    if extension & 0x80:
        if len(payload) < 4:
            return NO_IDS
        picture_id_at = at
        if payload[at] & 0x80:
            long_id = True
            picture_id = (payload[at] & 0x7F) << 8 | payload[at + 1]
            at += 2
        else:
            picture_id = payload[at]
            at += 1
    tl0: int | None = None
    tl0_at = 0
    if extension & 0x40:
        if at >= len(payload):
            return NO_IDS
        tl0, tl0_at = payload[at], at
    return PictureIds(picture_id, picture_id_at, long_id, tl0, tl0_at)


def shift_picture_ids(
    payload: bytes, ids: PictureIds, picture_id_offset: int, tl0_offset: int
) -> bytes:
    """``payload`` with its picture id and TL0PICIDX moved on by the offsets, each
    wrapping in its own space; the rest of the packet is unchanged."""
    out = bytearray(payload)
    if ids.picture_id is not None:
        at = ids.picture_id_at
        if ids.long_picture_id:
            value = (ids.picture_id + picture_id_offset) % PICTURE_ID_15
            out[at] = 0x80 | value >> 8
            out[at + 1] = value & 0xFF
        else:
            out[at] = (ids.picture_id + picture_id_offset) % PICTURE_ID_7
    if ids.tl0 is not None:
        out[ids.tl0_at] = (ids.tl0 + tl0_offset) & 0xFF
    return bytes(out)
