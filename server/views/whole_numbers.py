"""Whole numbers read from paths and query strings.

`str.isdigit` is not a test for "can be given to `int`": it is true for "²" (which `int`
refuses) and for other scripts' digits (which `int` accepts), and `int` refuses strings of
more than a few thousand digits. Either way the request would fail with a 500; here only
ASCII digits of bounded length count as a number.
"""

from __future__ import annotations

from common.errors import BadRequest

MAX_DIGITS = 9  # beyond any page, still or count the server names in an address


def whole_number(raw: str, message: str, low: int = 0, high: int = 10**MAX_DIGITS - 1) -> int:
    """``raw`` as a number from ``low`` to ``high``; anything else is a 400 saying
    ``message``."""
    if not (0 < len(raw) <= MAX_DIGITS and raw.isascii() and raw.isdigit()):
        raise BadRequest(message)
    number = int(raw)
    if not low <= number <= high:
        raise BadRequest(message)
    return number
