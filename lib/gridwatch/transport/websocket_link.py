"""WebSocket link: HTTP token login, then a JSON-RPC-style WebSocket.

Wire format: the client sends ``{"id": n, "method": m, "params": {...}}``
and the device answers ``{"id": n, "result": ...}`` or ``{"id": n, "error":
{"code": c, "message": s}}``; after ``subscribe {"event": name}`` it pushes
``{"event": name, "data": ...}``.

Per connection: request ids start at 1, one receive loop task runs for as
long as the socket is open (awaited on close), and requests still pending
when the socket goes fail with :class:`ConnectionLost` instead of hanging.
A silent peer is caught by aiohttp's heartbeat (a ping after
``heartbeat_s`` without traffic, the connection closed if no pong follows
within half of that) with a receive timeout behind it as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp
from yarl import URL

from gridwatch.transport.errors import (
    ConnectionLost,
    LinkClosedError,
    NotConnectedError,
    PayloadError,
    RequestError,
    RequestTimeout,
    TransportError,
)
from gridwatch.transport.http_link import (
    DeviceHttpLink,
    fetch_token,
    translate_client_error,
)
from gridwatch.transport.http_settings import LoginSettings, WebSocketSettings
from gridwatch.transport.link import Subscription, cancel_and_wait
from gridwatch.transport.payload import (
    decode_json_object,
)

# The settings live in a pure module; callers may import them from here.
__all__ = ["LoginSettings", "RpcError", "WebSocketLink", "WebSocketSettings"]

_LOGGER = logging.getLogger(__name__)

# Frames up to this multiple of max_payload_bytes are read and then dropped
# as "oversized" (the link keeps running); anything bigger is a broken peer
# and aiohttp closes the socket rather than buffer it.
OVERSIZED_READ_FACTOR = 4
# A clean close waits this long for the peer's close frame; a peer that is
# gone would otherwise hold every reconnect for aiohttp's 10 s default.
WS_CLOSE_TIMEOUT_S = 1.0
# A loss seen between the end of _open and the base marking the link
# connected must wait for that mark, or the base would ignore the report.
# The mark follows within one loop iteration; this only bounds a surprise.
CONNECTED_MARK_WAIT_S = 1.0


class RpcError(RequestError):
    """The device answered a request with an error object.

    Attributes:
        code: the device's error code (None if it sent none).
        message: the device's error message.
    """

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(f"{method} failed: {message} (code {code})")
        self.code = code
        self.message = message


class _Connection:
    """State of one WebSocket connection; a new one on every connect."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.receiver: asyncio.Task[None] | None = None
        self.open = True

    def take_id(self) -> int:
        seq = self.next_id
        self.next_id += 1
        return seq

    def fail_pending(self, error_type: type[TransportError], reason: str) -> None:
        """Fail every pending request (each with its own exception object)."""
        self.open = False
        pending, self.pending = self.pending, {}
        for method, future in pending.values():
            if not future.done():
                future.set_exception(error_type(f"{method}: {reason}"))
                # Marked retrieved: its request may have stopped waiting
                # (cancelled while sending) and must not log it.
                future.exception()


class WebSocketLink(DeviceHttpLink[WebSocketSettings]):
    """A device reached through an HTTP login and a JSON-RPC WebSocket.

    Subscriptions are event names: each is sent as a ``subscribe`` request
    (replayed after every reconnect) and the device's pushes of that event
    are delivered to the subscriber with the event name as key.
    Constructed as :class:`DeviceHttpLink`.
    """

    def __init__(self, name: str, settings: WebSocketSettings, **options: Any) -> None:
        super().__init__(name, settings, **options)
        self._conn: _Connection | None = None

    async def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Call ``method`` on the device and wait for its answer.

        Args:
            method: the method name.
            params: its parameters (an empty object when None).
            timeout: seconds to wait (default: ``request_timeout_s``).

        Returns:
            The ``result`` of the device's answer.

        Raises:
            NotConnectedError: no open connection.
            RpcError: the device answered with an error object.
            RequestTimeout: no answer within ``timeout``.
            ConnectionLost: the connection dropped before the answer came.
            LinkClosedError: :meth:`disconnect` was called meanwhile.
        """
        conn = self._conn
        if conn is None or not conn.open:
            raise NotConnectedError(f"link {self.name}: not connected")
        limit = self.settings.request_timeout_s if timeout is None else timeout
        seq = conn.take_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.pending[seq] = (method, future)
        frame = json.dumps({"id": seq, "method": method, "params": params or {}})
        try:
            async with asyncio.timeout(limit):
                try:
                    await conn.ws.send_str(frame)
                except (aiohttp.ClientError, OSError) as err:
                    raise translate_client_error(err, f"{method}: send", established=True) from err
                return await future
        except TimeoutError as err:
            raise RequestTimeout(f"{method}: no answer within {limit} s") from err
        finally:
            conn.pending.pop(seq, None)

    # ------------------------------------------------------------------
    # Link hooks

    async def _open(self) -> None:
        settings = self.settings
        session = self._session.open()
        url = self._base.join(URL(settings.ws_path))
        if settings.login is not None:
            token = await fetch_token(
                session,
                self._base,
                settings.login,
                timeout=settings.http_timeout_s,
                verify_ssl=settings.verify_ssl,
            )
            url = url.update_query(token=token)
        try:
            async with asyncio.timeout(settings.http_timeout_s):
                ws = await session.ws_connect(
                    url,
                    heartbeat=settings.heartbeat_s,
                    timeout=aiohttp.ClientWSTimeout(
                        ws_receive=settings.effective_receive_timeout_s,
                        ws_close=WS_CLOSE_TIMEOUT_S,
                    ),
                    max_msg_size=settings.max_payload_bytes * OVERSIZED_READ_FACTOR,
                    ssl=settings.verify_ssl,
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            # The URL carries the token: name only the path.
            raise translate_client_error(err, f"WebSocket {settings.ws_path}") from err
        conn = _Connection(ws)
        self._conn = conn
        conn.receiver = asyncio.create_task(
            self._receive_loop(conn), name=f"link-{self.name}-receive"
        )

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            receiver = conn.receiver
            await cancel_and_wait(receiver)
            error_type = LinkClosedError if self._closing.is_set() else ConnectionLost
            conn.fail_pending(error_type, "connection closed")
            # ws.close() waits up to ws_close for the peer's close frame.
            await conn.ws.close()
        await self._session.close()

    async def _send_subscribe(self, sub: Subscription) -> None:
        await self.request("subscribe", {"event": sub.key, **sub.options})

    async def _send_unsubscribe(self, key: str) -> None:
        await self.request("unsubscribe", {"event": key})

    async def _replay_subscriptions(self, subs: list[Subscription]) -> None:
        for sub in subs:
            try:
                await self._send_subscribe(sub)
            except RpcError as err:
                # The device refuses this one event; reconnecting would not
                # change its mind, so the others still go ahead.
                self._logger.warning("link %s: subscribe %s refused: %s", self.name, sub.key, err)

    def _on_lost(self, error: TransportError) -> None:
        conn = self._conn
        if conn is not None:
            conn.fail_pending(type(error), str(error))

    # ------------------------------------------------------------------
    # Receiving

    async def _receive_loop(self, conn: _Connection) -> None:
        """Read frames until the socket ends; then fail what is pending and
        report the loss. Cancelled by :meth:`_close`."""
        try:
            reason = await self._pump(conn)
        except Exception as err:
            # A bug in frame handling must end in a reconnect, not in a dead
            # link whose task error nobody reads.
            self._logger.exception("link %s: receive loop failed", self.name)
            reason = f"receive loop failed: {type(err).__name__}: {err}"
        conn.fail_pending(ConnectionLost, reason)
        if self._conn is not conn or self._closing.is_set():
            return
        if not self.connected:
            # The socket died between the end of _open and the base marking the
            # link connected. Waiting for that mark turns this into an ordinary
            # loss (connected cleared, health told) rather than a reconnect of a
            # link still shown as up. A failed connect cancels this task.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONNECTED_MARK_WAIT_S):
                    await self._connected.wait()
        self._connection_lost(reason)

    async def _pump(self, conn: _Connection) -> str:
        """Handle frames until the socket ends. Returns why it ended."""
        ws = conn.ws
        while True:
            try:
                msg = await ws.receive()
            except TimeoutError:
                return f"nothing received for {self.settings.effective_receive_timeout_s} s"
            except (aiohttp.ClientError, OSError) as err:
                return str(translate_client_error(err, "receive", established=True))
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                self._on_frame(conn, msg.data)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                return f"socket error: {msg.data}"
            else:  # CLOSE, CLOSING, CLOSED
                return f"closed by peer (code {ws.close_code})"

    def _on_frame(self, conn: _Connection, raw: str | bytes) -> None:
        try:
            frame = decode_json_object(raw, self.settings.max_payload_bytes)
            self._dispatch(conn, frame)
        except PayloadError as err:
            self.payload_errors.record(err, "websocket")

    def _dispatch(self, conn: _Connection, frame: dict[str, Any]) -> None:
        """Route a decoded frame: a reply to its request, an event to its
        subscriber.

        Raises:
            PayloadError: kind ``wrong_shape`` for a frame that is neither.
        """
        if "id" in frame:
            seq = frame["id"]
            if type(seq) is not int or ("result" not in frame and "error" not in frame):
                raise PayloadError("wrong_shape", "reply needs an integer id and result or error")
            self._note_message()
            entry = conn.pending.get(seq)
            if entry is None or entry[1].done():
                # Its request timed out or was cancelled meanwhile.
                self._logger.debug("link %s: late reply to request %s", self.name, seq)
                return
            method, future = entry
            if "error" in frame:
                future.set_exception(_rpc_error(method, frame["error"]))
            else:
                future.set_result(frame["result"])
            return
        event = frame.get("event")
        if not isinstance(event, str):
            raise PayloadError("wrong_shape", "frame is neither a reply nor an event")
        sub = self.subscriptions.get(event)
        if sub is None:
            self._note_message()
            return
        self._deliver(sub, frame.get("data"), key=event)


def _rpc_error(method: str, error: Any) -> RpcError:
    """An :class:`RpcError` from whatever the device put in ``error``."""
    if isinstance(error, dict):
        code = error.get("code")
        return RpcError(
            method, code if type(code) is int else None, str(error.get("message", error))
        )
    return RpcError(method, None, str(error))
