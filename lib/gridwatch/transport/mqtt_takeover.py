"""Telling a client-id fight from an ordinary loss. Pure: times come in.

A broker lets one connection per client id: a second client connecting with
the same id takes the session and the broker closes the first one. Two links
(or two installs) sharing a fixed ``client_id`` therefore take it from each
other for ever, each reconnect closing the other link's connection. MQTT 5
brokers say so (DISCONNECT with reason "Session taken over"); an MQTT 3.1.1
broker just closes the socket, so there the sign is a pattern: connections
the broker closes soon after accepting them, several times in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

# MQTT 5 DISCONNECT reason: another connection took this client id's session.
SESSION_TAKEN_OVER = 0x8E
# A connection closed by the broker within this long of its CONNACK counts
# as "closed right after connecting". Reconnect delays start at a second or
# two, so in a fight each connection lives about that long.
SHORT_LIVED_S = 10.0
# This many short-lived connections in a row, each closed by the broker with
# no reason given (MQTT 3.1.1), count as a fight. One or two are a broker
# restart or a flaky path.
SHORT_CLOSES_FOR_FIGHT = 3
# Once a fight is seen, it lasts while the broker keeps closing connections
# sooner than this (the fight slows down as the backoff grows to its cap of a
# minute); a connection that outlives it means the other client is gone.
FIGHT_OVER_AFTER_S = 150.0


@dataclass
class TakeoverWatch:
    """What the losses of one link's connections say about its client id."""

    short_closes: int = 0
    fighting: bool = False

    def closed(self, up_for_s: float, *, by_broker: bool, taken_over: bool) -> bool:
        """Note the end of a connection that had been up ``up_for_s``.

        Args:
            up_for_s: seconds from its CONNACK to its loss.
            by_broker: the broker ended it (an orderly close or a
                DISCONNECT), rather than a reset path, a keepalive timeout
                or this link itself.
            taken_over: the broker said another connection took the session.

        Returns:
            Whether another client now seems to use the client id.
        """
        if taken_over:
            self.fighting = True
        elif not by_broker:
            self.short_closes = 0
            self.fighting = False
        elif self.fighting and up_for_s < FIGHT_OVER_AFTER_S:
            pass  # still being pushed out, just more slowly
        elif up_for_s <= SHORT_LIVED_S:
            self.short_closes += 1
            self.fighting = self.short_closes >= SHORT_CLOSES_FOR_FIGHT
        else:
            self.short_closes = 0
            self.fighting = False
        return self.fighting

    def held(self) -> None:
        """A connection has lasted ``FIGHT_OVER_AFTER_S``: the other client
        is gone (or uses its own id now)."""
        self.short_closes = 0
        self.fighting = False
