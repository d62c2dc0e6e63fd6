"""MQTT link: paho-mqtt 2.x driven from the asyncio loop.

There is no paho network thread. As aiomqtt and Home Assistant's MQTT client
do, the socket is registered with the loop (``add_reader`` / ``add_writer``)
and a small task calls ``loop_misc`` for keepalives, so every paho callback
runs on the loop thread. Unlike them, the connect uses no thread either: the
TCP connect and TLS handshake are awaited on the loop
(:mod:`gridwatch.transport.async_socket`) and paho is handed the connected
socket, so links stuck connecting to a dead path hold no executor thread
that a healthy link's connect would queue behind. A ``disconnect()`` during
a connect cancels it, which closes its socket at once.

Each connection gets a fresh paho ``Client``: per-connection state (message
ids, pending acks) starts clean, and the base class replays subscriptions.
Paho and socket errors become the suite's errors in :func:`_translate`,
:func:`_rc_error` and :func:`_connack_error` only.

This is the I/O module. The pure parts live beside it and are re-exported
here: settings and the TLS context in :mod:`gridwatch.transport.mqtt_settings`,
topic filter syntax in :mod:`gridwatch.transport.mqtt_topics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import DISCONNECT, PUBACK, PUBLISH
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridwatch.transport.async_socket import open_client_socket
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    LinkClosedError,
    NotConnectedError,
    RequestError,
    RequestTimeout,
    TransportError,
)
from gridwatch.transport.link import Link, MessageCallback, Subscription
from gridwatch.transport.mqtt_settings import MqttProtocol, MqttSettings, build_tls_context
from gridwatch.transport.mqtt_takeover import (
    FIGHT_OVER_AFTER_S,
    SESSION_TAKEN_OVER,
    TakeoverWatch,
)
from gridwatch.transport.mqtt_topics import validate_filter

# The pure names are re-exported: callers import everything MQTT from here.
__all__ = [
    "GRACEFUL_CLOSE_S",
    "MAX_PACKETS_PER_PASS",
    "READ_CHUNK_BYTES",
    "READ_PASS_BUDGET_S",
    "ROUTE_CACHE_MAX",
    "MqttLink",
    "MqttProtocol",
    "MqttSettings",
    "build_tls_context",
    "validate_filter",
]

# CONNACK reason codes that mean "your credentials are wrong": retrying cannot
# help, so they stop the reconnect loop. MQTT 3.1.1 return codes 4 and 5 are
# converted by paho to these MQTT 5 values.
_BAD_CREDENTIALS = 0x86  # Bad user name or password
_NOT_AUTHORIZED = 0x87  # Not authorized
_KEEPALIVE_TIMEOUT = 0x8D  # what paho reports when a PINGRESP never came
# After a DISCONNECT is queued, give the socket this long to flush it (and the
# retained "offline") before closing it hard.
GRACEFUL_CLOSE_S = 1.0
# Routes (topic -> matching subscriptions) are cached; a broker that sends
# many distinct topics must not grow the cache without bound.
ROUTE_CACHE_MAX = 10_000
# One recv() per wake-up takes up to this much; hundreds of small packets.
READ_CHUNK_BYTES = 64 * 1024
# Packets handled per loop callback before yielding to other tasks; keeps
# event-loop lag low under a flood (about a millisecond of work).
MAX_PACKETS_PER_PASS = 100
# ... and at most this much time per pass: subscribers run inside it, and a
# slow one (or a machine busy elsewhere) must not stretch one pass into a
# lag spike for every other task.
READ_PASS_BUDGET_S = 0.002


def _translate(err: BaseException, what: str) -> TransportError:
    """The one place where paho / socket / TLS exceptions become ours."""
    if isinstance(err, TransportError):
        return err
    if isinstance(err, ssl.SSLCertVerificationError):
        return ConnectError(f"{what}: broker certificate not trusted: {err.verify_message}")
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        return ConnectError(f"{what}: TLS failed: {err}")
    if isinstance(err, TimeoutError):
        return ConnectError(f"{what}: timed out")
    if isinstance(err, OSError):
        return ConnectError(f"{what}: {err.strerror or err}")
    return ConnectError(f"{what}: {type(err).__name__}: {err}")


def _rc_error(rc: MQTTErrorCode | int, what: str) -> TransportError:
    """An error for a paho return code that is not success."""
    if rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
        return NotConnectedError(f"{what}: not connected")
    return RequestError(f"{what}: {mqtt.error_string(rc)}")


def _connack_error(reason: ReasonCode, what: str) -> TransportError:
    if reason.value in (_BAD_CREDENTIALS, _NOT_AUTHORIZED):
        return AuthError(f"{what}: broker refused the credentials ({reason})")
    return ConnectError(f"{what}: broker refused the connection ({reason})")


class _NullLock:
    """Stands in for paho's locks: a loop-driven client is used by the loop
    thread only."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc: object) -> None:
        pass


class _LoopClient(mqtt.Client):
    """A paho ``Client`` tuned to be driven from an event loop.

    - Reads: paho asks the socket for 1 byte, then the length bytes, then the
      body: three syscalls and one loop wake-up per packet. Here one
      ``recv`` fills a buffer and paho's small reads are served from it, so
      a wake-up handles every packet that has arrived.
    - Locks: paho's mutexes guard against its own network thread, which a
      loop-driven client does not have (Home Assistant does the same).
    - Socket: paho's ``connect()`` would open it with blocking calls; here
      it takes :attr:`prepared`, connected (and TLS-wrapped) on the loop.

    These rely on paho 2.1 internals (``_sock_recv``, ``_create_socket``,
    the ``*_mutex`` attributes); AppDaemon 4.5 pins that version and the
    broker tests exercise every path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = bytearray()
        self.prepared: socket.socket | None = None
        # The broker closed the socket in order (EOF), as it does to hand the
        # client id's session to another connection; a reset path does not.
        self.eof_seen = False
        for name in _PAHO_LOCKS:
            setattr(self, name, _NullLock())

    @property
    def buffered(self) -> int:
        """Bytes received from the socket that paho has not parsed yet."""
        return len(self._rbuf)

    def _create_socket(self) -> socket.socket:
        # Called by paho's connect(): the socket the loop connected (paho
        # sets it non-blocking and sends CONNECT on it).
        sock, self.prepared = self.prepared, None
        if sock is None:
            raise ConnectError("no connected socket to hand to paho")
        return sock

    def _packet_write(self) -> MQTTErrorCode:
        # Paho sends each queued packet with its own send(): at QoS 1 that is
        # one syscall per PUBACK, and flushing a burst of a hundred of them
        # held the event loop for milliseconds. Packets that need nothing
        # after they are sent are joined into one buffer and one send.
        self._coalesce_head()
        return super()._packet_write()

    def _coalesce_head(self) -> None:
        queue = self._out_packet
        if len(queue) < 2 or queue[0]["pos"] != 0:
            return
        joined: list[bytes] = []
        while queue and _needs_no_follow_up(queue[0]):
            joined.append(queue.popleft()["packet"])
        if len(joined) == 1:
            queue.appendleft(_plain_packet(joined[0]))
        elif joined:
            queue.appendleft(_plain_packet(b"".join(joined)))

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self._rbuf:
            data = super()._sock_recv(READ_CHUNK_BYTES)
            if not data:
                self.eof_seen = True
            if len(data) <= bufsize:
                return data  # includes b"" (EOF)
            self._rbuf += data
        chunk = bytes(self._rbuf[:bufsize])
        # Deleting from the front of a bytearray is O(1) in CPython.
        del self._rbuf[:bufsize]
        return chunk


# Packet types paho does something with once sent (a QoS 0 PUBLISH reports
# itself published, a DISCONNECT closes the socket); every other packet is
# just bytes on the wire.
_FOLLOW_UP_TYPES = (PUBLISH, DISCONNECT)


def _needs_no_follow_up(packet: Any) -> bool:
    if packet["pos"] != 0:
        return False
    kind = packet["command"] & 0xF0
    if kind == DISCONNECT:
        return False
    return not (kind == PUBLISH and packet["qos"] == 0)


def _plain_packet(data: bytes) -> Any:
    """An out-packet entry that is only bytes (no callback after sending)."""
    return {
        "command": PUBACK,
        "mid": 0,
        "qos": 1,
        "pos": 0,
        "to_process": len(data),
        "packet": data,
        "info": None,
    }


_PAHO_LOCKS = (
    "_in_callback_mutex",
    "_callback_mutex",
    "_msgtime_mutex",
    "_out_message_mutex",
    "_in_message_mutex",
    "_reconnect_delay_mutex",
    "_mid_generate_mutex",
)


class _Session:
    """One paho client and its connection: made per connect, dropped on close."""

    def __init__(self, client: _LoopClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.installed = False
        self.connected_at: float | None = None  # link clock time of the CONNACK
        self.fight_timer: asyncio.TimerHandle | None = None  # socket registered with the loop
        self.up = False  # CONNACK accepted and socket still open
        self.connack: asyncio.Future[None] = loop.create_future()
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.socket_closed = asyncio.Event()
        self.misc: asyncio.Task[None] | None = None
        self.flush_scheduled = False
        self.reads = 0  # packets read: proof the broker is talking
        self.watchers: set[asyncio.Task[None]] = set()

    def fail_pending(self, error: TransportError) -> None:
        if not self.connack.done():
            self.connack.set_exception(error)
            # Nobody may be waiting any more (the attempt was abandoned).
            self.connack.exception()
        acks, self.acks = self.acks, {}
        for fut in acks.values():
            if not fut.done():
                fut.set_exception(error)
                # Marked retrieved: a waiter still gets the error, but an
                # ack whose waiter never started (a SUBACK watcher cancelled
                # by a close right after the connect) must not log it.
                fut.exception()


class MqttLink(Link):
    """An MQTT connection with the shared lifecycle of :class:`Link`.

    Subscription keys are MQTT topic filters; options: ``qos``. Messages are
    delivered with ``key`` = the concrete topic and ``payload`` = bytes, to
    every subscription whose filter matches.

    Args:
        name: link name (logs, entities).
        settings: broker settings.
        **kwargs: passed to :class:`Link` (backoff, health, clock, rand, sleep,
            logger).
    """

    def __init__(self, name: str, settings: MqttSettings, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.settings = settings
        self.client_id = settings.client_id or f"gridwatch-{name}-{uuid.uuid4().hex[:8]}"
        self._session: _Session | None = None
        self._tls: ssl.SSLContext | None = None
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._takeover = TakeoverWatch()

    # ------------------------------------------------------------------
    # Public surface

    async def publish(
        self,
        topic: str,
        payload: bytes | str | None,
        qos: int | None = None,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Publish ``payload`` on ``topic``.

        Args:
            topic: concrete topic (no wildcards).
            payload: bytes or text (UTF-8); None for an empty message.
            qos: 0, 1 or 2 (default: ``settings.default_qos``).
            retain: ask the broker to keep it as the topic's last value.
            timeout: for QoS >= 1, how long to wait for the broker's ack
                (default ``settings.request_timeout_s``).

        Raises:
            NotConnectedError: the link is down (nothing is queued for later).
            RequestTimeout: no ack within ``timeout``.
            ConnectionLost: the connection dropped before the ack.
            RequestError: paho refused the message.
            ValueError: invalid topic or QoS.
        """
        session = self._session
        if not self.connected or session is None or not session.up:
            raise NotConnectedError(f"link {self.name}: cannot publish to {topic}: not connected")
        await self._publish_on(session, topic, payload, qos, retain, timeout)

    async def subscribe(self, key: str, callback: MessageCallback, **options: Any) -> Subscription:
        """Subscribe to topic filter ``key`` (see :meth:`Link.subscribe`).

        Raises:
            ValueError: invalid filter or QoS.
        """
        validate_filter(key)
        if options.get("qos", self.settings.default_qos) not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {options['qos']!r}")
        self._routes.clear()
        return await super().subscribe(key, callback, **options)

    async def unsubscribe(self, key: str) -> None:
        """Forget topic filter ``key`` (see :meth:`Link.unsubscribe`)."""
        self._routes.clear()
        await super().unsubscribe(key)

    # ------------------------------------------------------------------
    # Link hooks

    async def _open(self) -> None:
        if self._session is not None:
            # The base closes before every attempt; this only guards a future
            # change there from leaking a socket.
            await self._close()
        loop = asyncio.get_running_loop()
        session = _Session(self._make_client(), loop)
        session.client.user_data_set(session)
        self._session = session
        s = self.settings
        what = f"link {self.name}: connect to {s.host}:{s.port}"
        try:
            if s.tls and self._tls is None:
                # Reads CA files: once per link, off the loop.
                self._tls = await loop.run_in_executor(None, build_tls_context, s)
            async with asyncio.timeout(s.socket_connect_timeout_s):
                sock = await open_client_socket(s.host, s.port, self._tls)
            self._send_connect(session, sock)
        except TransportError:
            raise
        except Exception as err:
            raise _translate(err, what) from err
        self._install(session)
        # Bounded by the Link's connect timeout (and by paho's own keepalive
        # check, which closes a connection whose CONNACK never comes).
        await session.connack
        if self.settings.availability_topic:
            await self._publish_on(
                session,
                self.settings.availability_topic,
                self.settings.payload_online,
                None,
                True,
                None,
            )

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.up = False
        if session.fight_timer is not None:
            session.fight_timer.cancel()
        session.fail_pending(LinkClosedError(f"link {self.name}: closed"))
        helpers = {t for t in (session.misc, *session.watchers) if t is not None}
        for task in helpers:
            task.cancel()
        if helpers:
            await asyncio.wait(helpers, timeout=GRACEFUL_CLOSE_S)
        client = session.client
        if session.installed and client.socket() is not None and client.is_connected():
            self._say_goodbye(session)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GRACEFUL_CLOSE_S):
                    await session.socket_closed.wait()
        self._close_socket(session)

    async def _send_subscribe(self, sub: Subscription) -> None:
        refused = await self._subscribe_many([sub])
        if refused:
            raise RequestError(f"link {self.name}: broker refused subscription {sub.key}")

    async def _replay_subscriptions(self, subs: list[Subscription]) -> None:
        # One SUBSCRIBE for all filters: a thousand topics cost one round trip.
        # The attempt does not wait for the SUBACK: a persistent session's
        # backlog of queued messages arrives before it, so waiting would
        # count a connection that is delivering thousands of messages as a
        # failed attempt. A watcher checks the SUBACK comes (see _watch_suback).
        if not subs:
            return
        session = self._require_session()
        mid = self._send_subscribe_packet(session, subs)
        fut = self._expect_ack(session, mid)
        watcher = asyncio.create_task(
            self._watch_suback(session, mid, fut, subs), name=f"mqtt-suback-{self.name}"
        )
        session.watchers.add(watcher)
        watcher.add_done_callback(session.watchers.discard)

    async def _watch_suback(
        self,
        session: _Session,
        mid: int,
        fut: asyncio.Future[Any],
        subs: Sequence[Subscription],
    ) -> None:
        """Wait for a replayed SUBSCRIBE's SUBACK for as long as the broker
        keeps sending (a backlog drains ahead of it); a broker silent for
        ``request_timeout_s`` with no SUBACK has a connection that is not
        usable, and the link reconnects."""
        limit = self.settings.request_timeout_s
        try:
            while True:
                seen = session.reads
                try:
                    async with asyncio.timeout(limit):
                        codes: list[ReasonCode] = await asyncio.shield(fut)
                    break
                except TimeoutError:
                    if session.reads != seen:
                        continue  # still draining: the SUBACK is queued behind
                    if session is self._session and session.up:
                        self._connection_lost(f"no SUBACK within {limit} s")
                    return
                except TransportError:
                    return  # the connection ended; the next one replays again
        finally:
            if session.acks.get(mid) is fut:
                del session.acks[mid]
        refused = [sub.key for sub, code in zip(subs, codes, strict=False) if code.is_failure]
        if refused:
            # An ACL refusal is not a connection problem; retrying would not
            # change it. Keep the entries so a later reconnect tries again.
            self._logger.warning(
                "link %s: broker refused %d subscription(s): %s",
                self.name,
                len(refused),
                ", ".join(refused[:10]),
            )

    async def _send_unsubscribe(self, key: str) -> None:
        session = self._require_session()
        what = f"link {self.name}: unsubscribe {key}"
        rc, mid = session.client.unsubscribe(key)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _rc_error(rc, what)
        await self._await_ack(session, mid, what, None)

    def _on_lost(self, error: TransportError) -> None:
        if self._session is not None:
            self._session.fail_pending(error)

    def _on_connected(self) -> None:
        session = self._session
        if self._takeover.fighting and session is not None:
            # Connected for now, but the other client will take it back;
            # a connection that holds long enough says it has gone.
            self._health.problem(self._fight_text())
            session.fight_timer = session.loop.call_later(
                FIGHT_OVER_AFTER_S, self._fight_over, session
            )

    def _fight_over(self, session: _Session) -> None:
        if session is self._session and session.up and self._takeover.fighting:
            self._takeover.held()
            self._health.problem(None)
            self._logger.info("link %s: client_id %r is no longer taken", self.name, self.client_id)

    def _loss_counts_as_failure(self) -> bool:
        return self._takeover.fighting

    def _fight_text(self) -> str:
        return (
            f"another client uses client_id {self.client_id!r}: the broker keeps closing this "
            "link's connection right after accepting it (session taken over); give each link "
            "and each install its own client_id, or leave it empty for a random one"
        )

    # ------------------------------------------------------------------
    # Connection internals

    def _make_client(self) -> _LoopClient:
        s = self.settings
        v5 = s.protocol == "5"
        client = _LoopClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            # MQTT 5 carries clean start in connect(); paho rejects both.
            clean_session=None if v5 else s.clean_session,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            # Paho must never reconnect by itself: in its CONNACK handler that
            # would run a blocking connect on the event loop.
            reconnect_on_failure=False,
        )
        client.connect_timeout = s.socket_connect_timeout_s
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.availability_topic:
            client.will_set(
                s.availability_topic, s.payload_offline, qos=max(s.default_qos, 1), retain=True
            )
        return client

    def _send_connect(self, session: _Session, sock: socket.socket) -> None:
        """Hand paho the connected socket and queue CONNECT, on the loop.

        No socket callbacks are set yet, so paho writes CONNECT at once
        (non-blocking) and calls nothing else; :meth:`_install` wires the
        socket after.
        """
        s = self.settings
        client = session.client
        client.prepared = sock
        try:
            if self._tls is not None:
                # Paho's own TLS bookkeeping; the handshake is already done.
                client.tls_set_context(self._tls)
            if s.protocol == "5":
                # paho's Properties.__init__ carries no annotations.
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                if not s.clean_session:
                    props.SessionExpiryInterval = s.session_expiry_s
                client.connect(
                    s.host, s.port, s.keepalive_s, clean_start=s.clean_session, properties=props
                )
            else:
                client.connect(s.host, s.port, s.keepalive_s)
        except BaseException:
            # Paho keeps the socket if sending CONNECT failed: close it here.
            if client.prepared is not None:
                client.prepared.close()
                client.prepared = None
            _force_close(client)
            raise

    def _install(self, session: _Session) -> None:
        """Register the new socket with the loop and set paho's callbacks."""
        client = session.client
        sock = client.socket()
        if sock is None:
            raise ConnectError(f"link {self.name}: no socket after connect")
        if isinstance(sock, socket.socket):  # also true for an SSLSocket
            # MQTT sends many small packets (PUBACK, PINGREQ); with Nagle on,
            # each one waits for the peer's delayed ACK (~40 ms a round trip).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_ack
        client.on_subscribe = self._on_ack
        client.on_unsubscribe = self._on_ack
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        session.loop.add_reader(sock, self._on_readable, session)
        session.installed = True
        if client.want_write():
            # CONNECT did not fit in the socket buffer from the thread.
            session.loop.add_writer(sock, client.loop_write)
        session.misc = asyncio.create_task(self._misc_loop(session), name=f"mqtt-misc-{self.name}")

    def _say_goodbye(self, session: _Session) -> None:
        """Queue the retained "offline" and a DISCONNECT (which suppresses the
        last will, so "offline" must be published explicitly)."""
        s = self.settings
        client = session.client
        if s.availability_topic:
            client.publish(
                s.availability_topic, s.payload_offline, qos=max(s.default_qos, 1), retain=True
            )
        client.disconnect()

    def _close_socket(self, session: _Session) -> None:
        client = session.client
        sock = client.socket()
        if sock is not None and session.installed:
            session.loop.remove_reader(sock)
            session.loop.remove_writer(sock)
        # Detach first: paho's __del__ closes sockets too and would call back.
        for name in (
            "on_connect",
            "on_disconnect",
            "on_message",
            "on_publish",
            "on_subscribe",
            "on_unsubscribe",
            "on_socket_close",
            "on_socket_register_write",
            "on_socket_unregister_write",
        ):
            setattr(client, name, None)
        _force_close(client)

    async def _misc_loop(self, session: _Session) -> None:
        # Keepalive checks need sub-keepalive resolution to notice a missing
        # PINGRESP in time; four checks per keepalive period is plenty.
        interval = min(1.0, self.settings.keepalive_s / 4)
        while True:
            await asyncio.sleep(interval)
            if session.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return

    def _require_session(self) -> _Session:
        session = self._session
        if session is None or not session.up:
            raise NotConnectedError(f"link {self.name}: not connected")
        return session

    async def _publish_on(
        self,
        session: _Session,
        topic: str,
        payload: bytes | str | None,
        qos: int | None,
        retain: bool,
        timeout: float | None,
    ) -> None:
        qos = self.settings.default_qos if qos is None else qos
        what = f"link {self.name}: publish {topic}"
        info = session.client.publish(topic, payload, qos, retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _rc_error(info.rc, what)
        if qos > 0:
            await self._await_ack(session, info.mid, what, timeout)

    def _send_subscribe_packet(self, session: _Session, subs: Sequence[Subscription]) -> int:
        """Queue one SUBSCRIBE for ``subs``; return its message id."""
        what = f"link {self.name}: subscribe {len(subs)} filter(s)"
        topics = [(sub.key, int(sub.options.get("qos", self.settings.default_qos))) for sub in subs]
        rc, mid = session.client.subscribe(topics)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _rc_error(rc, what)
        return mid

    async def _subscribe_many(self, subs: Sequence[Subscription]) -> list[str]:
        """Send one SUBSCRIBE for ``subs``; return the filters the broker refused."""
        session = self._require_session()
        what = f"link {self.name}: subscribe {len(subs)} filter(s)"
        mid = self._send_subscribe_packet(session, subs)
        codes: list[ReasonCode] = await self._await_ack(session, mid, what, None)
        return [sub.key for sub, code in zip(subs, codes, strict=False) if code.is_failure]

    def _expect_ack(self, session: _Session, mid: int) -> asyncio.Future[Any]:
        # Registered before any await: the ack can only arrive after one.
        fut: asyncio.Future[Any] = session.loop.create_future()
        session.acks[mid] = fut
        return fut

    async def _await_ack(
        self, session: _Session, mid: int, what: str, timeout: float | None
    ) -> Any:
        fut = self._expect_ack(session, mid)
        limit = self.settings.request_timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await fut
        except TimeoutError as err:
            raise RequestTimeout(f"{what}: no ack within {limit} s") from err
        finally:
            if session.acks.get(mid) is fut:
                del session.acks[mid]

    # ------------------------------------------------------------------
    # Paho callbacks: all on the loop thread; they only hand results off.

    def _on_readable(self, session: _Session) -> None:
        client = session.client
        deadline = time.perf_counter() + READ_PASS_BUDGET_S
        for _ in range(MAX_PACKETS_PER_PASS):
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            session.reads += 1
            sock = client.socket()
            if sock is None:
                return
            # TLS may hold decrypted bytes while the socket itself is drained.
            pending = getattr(sock, "pending", None)
            if not client.buffered and not (pending is not None and pending() > 0):
                return
            if time.perf_counter() > deadline:
                break
        # Bytes are already out of the socket, so the selector will not wake
        # us for them: come back after other callbacks had their turn.
        session.loop.call_soon(self._on_readable, session)

    def _on_register_write(self, client: mqtt.Client, session: _Session, sock: Any) -> None:
        # Flush on the next loop pass instead of arming the selector: the
        # socket is nearly always writable, and every PUBACK queued while
        # reading a burst then leaves in one pass without epoll_ctl calls.
        if not session.flush_scheduled:
            session.flush_scheduled = True
            session.loop.call_soon(self._flush, session)

    def _flush(self, session: _Session) -> None:
        session.flush_scheduled = False
        client = session.client
        client.loop_write()
        sock = client.socket()
        if sock is not None and client.want_write():
            # The kernel buffer is full: wait until the socket drains.
            session.loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client: mqtt.Client, session: _Session, sock: Any) -> None:
        session.loop.remove_writer(sock)

    def _on_socket_close(self, client: mqtt.Client, session: _Session, sock: Any) -> None:
        # Called before paho closes the fd: unregister while the number is ours.
        session.loop.remove_reader(sock)
        session.loop.remove_writer(sock)
        session.socket_closed.set()

    def _on_connect(
        self,
        client: mqtt.Client,
        session: _Session,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if session.connack.done():
            return
        if reason.is_failure:
            session.connack.set_exception(_connack_error(reason, f"link {self.name}"))
        else:
            session.up = True
            session.connected_at = self._clock()
            session.connack.set_result(None)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        session: _Session,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_up, session.up = session.up, False
        why = _loss_reason(flags, reason)
        if was_up and session is self._session and self._pushed_out(session, flags, reason):
            why = self._fight_text()
        error: TransportError
        if was_up:
            error = ConnectionLost(f"link {self.name}: connection lost: {why}")
        else:
            error = ConnectError(f"link {self.name}: closed before CONNACK: {why}")
        session.fail_pending(error)
        if was_up and session is self._session:
            self._connection_lost(why)

    def _pushed_out(self, session: _Session, flags: Any, reason: ReasonCode) -> bool:
        """Note how a connection ended; True if another client seems to
        use this link's client id (see :mod:`gridwatch.transport.mqtt_takeover`)."""
        was_fighting = self._takeover.fighting
        up_for = self._clock() - (session.connected_at or self._clock())
        from_server = bool(getattr(flags, "is_disconnect_packet_from_server", False))
        fighting = self._takeover.closed(
            up_for,
            by_broker=from_server
            or (session.client.eof_seen and reason.value != _KEEPALIVE_TIMEOUT),
            taken_over=from_server and reason.value == SESSION_TAKEN_OVER,
        )
        if fighting and not was_fighting:
            self._logger.warning("link %s: %s", self.name, self._fight_text())
        elif was_fighting and not fighting:
            self._logger.info("link %s: client_id %r is no longer taken", self.name, self.client_id)
        return fighting

    def _on_ack(
        self, client: mqtt.Client, session: _Session, mid: int, reason: Any, properties: Any
    ) -> None:
        fut = session.acks.pop(mid, None)
        if fut is None or fut.done():
            return  # a QoS 0 publish, or a waiter that timed out
        if isinstance(reason, ReasonCode) and reason.is_failure:
            fut.set_exception(RequestError(f"link {self.name}: refused by broker: {reason}"))
        else:
            fut.set_result(reason)

    def _on_message(self, client: mqtt.Client, session: _Session, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        routes = self._routes.get(topic)
        if routes is None:
            routes = tuple(
                sub for sub in self._subs.values() if mqtt.topic_matches_sub(sub.key, topic)
            )
            if len(self._routes) >= ROUTE_CACHE_MAX:
                self._routes.clear()
            self._routes[topic] = routes
        if not routes:
            self._note_message()
            return
        payload = msg.payload
        for sub in routes:
            self._deliver(sub, payload, key=topic)


def _loss_reason(flags: Any, reason: ReasonCode) -> str:
    """Words for why a connection ended (shown as the link's last error).
    Paho reports a plain socket close as "Unspecified error"."""
    if getattr(flags, "is_disconnect_packet_from_server", False):
        return f"broker sent DISCONNECT ({reason})"
    if reason.value == _KEEPALIVE_TIMEOUT:
        return "no answer within the keepalive period"
    return "connection closed or reset"


def _force_close(client: mqtt.Client) -> None:
    """Close paho's socket now, without a DISCONNECT. Paho has no public
    close; ``_sock_close`` is what its own loop uses on errors."""
    with contextlib.suppress(OSError):
        client._sock_close()
