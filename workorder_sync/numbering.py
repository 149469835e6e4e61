"""Local work-order numbers: ``<PREFIX><YYYYMMDD><NNNNNN>``, e.g. ``GD20261207000042``.

Readable (the day is in it), unique, and in creation order: for one prefix,
sorting the numbers as text sorts them by (day, sequence), because the date and
the sequence have fixed widths. The prefix is 1 to 8 capital ASCII letters (a
district or site code), so the parts split without ambiguity.

How the sequence is allocated (the repository does it, not this module): one
counter row per (prefix, local day in Asia/Shanghai), incremented in the same
PostgreSQL transaction that inserts the order::

    INSERT INTO work_order_seq (prefix, day, last_seq) VALUES ($1, $2, 1)
    ON CONFLICT (prefix, day) DO UPDATE SET last_seq = work_order_seq.last_seq + 1
    RETURNING last_seq

The row lock serialises concurrent creators of the same day. A transaction that
rolls back rolls its increment back with it, so a number is either held by a
committed order or was never issued: numbers are gapless and never reused
(unlike a PostgreSQL SEQUENCE, whose values survive a rollback as gaps).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final, NamedTuple

__all__ = ["SEQ_DIGITS", "SEQ_MAX", "OrderNo", "format_order_no", "parse_order_no"]

SEQ_DIGITS: Final = 6
SEQ_MAX: Final = 10**SEQ_DIGITS - 1
_PREFIX_RE = re.compile(r"[A-Z]{1,8}")
_ORDER_NO_RE = re.compile(rf"([A-Z]{{1,8}})(\d{{8}})(\d{{{SEQ_DIGITS}}})")


class OrderNo(NamedTuple):
    prefix: str
    day: date
    seq: int


def format_order_no(prefix: str, day: date, seq: int) -> str:
    """``format_order_no("GD", date(2026, 12, 7), 42) == "GD20261207000042"``."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"order number prefix {prefix!r} is not 1 to 8 capital letters A-Z")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= SEQ_MAX:
        raise ValueError(f"order number sequence {seq!r} is not 1..{SEQ_MAX}")
    return f"{prefix}{day:%Y%m%d}{seq:0{SEQ_DIGITS}d}"


def parse_order_no(text: str) -> OrderNo:
    """The inverse of :func:`format_order_no`; ValueError naming the bad part."""
    match = _ORDER_NO_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not an order number (PREFIX + YYYYMMDD + {SEQ_DIGITS} digits)"
        )
    prefix, day_text, seq_text = match.groups()
    try:
        day = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:]))
    except ValueError:
        raise ValueError(f"{text!r}: {day_text} is not a date") from None
    seq = int(seq_text)
    if seq == 0:
        raise ValueError(f"{text!r}: sequence 0 is never issued")
    return OrderNo(prefix, day, seq)
