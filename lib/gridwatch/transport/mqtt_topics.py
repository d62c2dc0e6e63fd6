"""MQTT topic filter syntax.

Pure: no paho import, so a config schema can check filters without loading
the client. Matching a topic against a filter is paho's
``topic_matches_sub``, used by :mod:`gridwatch.transport.mqtt_link`.
"""

from __future__ import annotations

__all__ = ["validate_filter"]


def validate_filter(topic_filter: str) -> None:
    """Check an MQTT topic filter's wildcard syntax.

    Raises:
        ValueError: empty, or ``#`` / ``+`` not standing alone in a level, or
            ``#`` not last.
    """
    if not topic_filter:
        raise ValueError("topic filter must not be empty")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be a whole last level in {topic_filter!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level in {topic_filter!r}")
