"""Public object ids: a type prefix and 22 base62 characters that sort by creation time.

The first 48 bits are milliseconds since the epoch, the last 80 are random, so ids are
unique without coordination, index-friendly (new rows go to the right of the B-tree) and
usable as a stable cursor for pagination.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 22  # 62**22 > 2**128


def _base62(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """Return ``prefix_`` followed by a time-ordered random body, e.g. ``pay_0Qx...``."""
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{_base62(value, _BODY_LENGTH)}"


class IdFactory:
    """A picklable default for model id fields (migrations serialise it by path)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return new_id(self.prefix)

    def deconstruct(self) -> tuple[str, list[str], dict[str, str]]:
        return ("pesarail.common.ids.IdFactory", [self.prefix], {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdFactory) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)
