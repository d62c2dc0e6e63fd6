"""Payload decoding that never raises into a receive loop.

A malformed payload is counted per kind (not JSON, too large, wrong type)
and logged once per kind per link, so a chatty broken device cannot flood
the log nor stop the link.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from gridwatch.transport.errors import PayloadError

# Device payloads are small JSON documents; anything this large is a bug or an
# attack, and decoding it would stall the loop.
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024


def decode_json(
    raw: bytes | bytearray | memoryview | str, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Any:
    """Decode a JSON payload.

    Args:
        raw: the payload as received (bytes-like, or text already decoded).
        max_bytes: payloads larger than this (in UTF-8 bytes) are refused unread.

    Returns:
        The decoded JSON value.

    Raises:
        PayloadError: kind ``oversized``, ``encoding`` or ``not_json``.
    """
    if isinstance(raw, str):
        # A character is at least one UTF-8 byte, so a long text is refused
        # before paying for its encoding.
        size = len(raw) if len(raw) > max_bytes else len(raw.encode("utf-8", "surrogatepass"))
    else:
        raw = bytes(raw)
        size = len(raw)
    if size > max_bytes:
        raise PayloadError("oversized", f"{size} bytes > {max_bytes}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PayloadError("encoding", str(err)) from err
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:
        raise PayloadError("not_json", str(err)[:120]) from err


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN / Infinity, JSON does not; a NaN power reading
    # would slip past every range check downstream.
    raise ValueError(f"{name} is not valid JSON")


def decode_json_object(
    raw: bytes | bytearray | memoryview | str, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> dict[str, Any]:
    """Decode a payload that must be a JSON object.

    Args:
        raw: as :func:`decode_json`.
        max_bytes: as :func:`decode_json`.

    Returns:
        The decoded object.

    Raises:
        PayloadError: as :func:`decode_json`, or kind ``wrong_type``.
    """
    value = decode_json(raw, max_bytes)
    if not isinstance(value, dict):
        raise PayloadError("wrong_type", f"expected a JSON object, got {type(value).__name__}")
    return value


class PayloadErrorLog:
    """Counts payload errors per kind; logs the first of each kind only."""

    def __init__(self, link_name: str, logger: logging.Logger) -> None:
        self._link = link_name
        self._logger = logger
        self.counts: Counter[str] = Counter()

    def record(self, err: PayloadError, source: str = "") -> None:
        self.counts[err.kind] += 1
        if self.counts[err.kind] == 1:
            self._logger.warning(
                "link %s: dropped a malformed payload%s (%s); further %s payloads are only counted",
                self._link,
                f" from {source}" if source else "",
                err,
                err.kind,
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())
