"""A real aiohttp device server on loopback, for WebSocket / HTTP link tests.

It plays the controller the suite talks to: an HTTP login that hands out a
bearer token, JSON endpoints behind that token, and a WebSocket speaking
JSON-RPC-style messages with event subscriptions. Tests (and a demo
simulator) steer it: push events, drop or freeze connections, fail or hang
logins, stop answering requests, stop and start again on the same port.

:class:`DeviceServer` knows nothing of pytest; the ``device_server`` fixture
at the bottom is a thin wrapper that always stops it. :class:`Inbox` (a
recording subscriber) and :func:`eventually` help the link tests that use it.

Endpoints: ``POST /api/login``, ``GET``/``POST /api/<name>`` (bearer token),
``GET /ws?token=...``; WebSocket methods ``subscribe``, ``unsubscribe``,
``echo``, ``get`` plus any handler a test puts in :attr:`DeviceServer.methods`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from aiohttp import WSMsgType, web

from gridwatch.transport.link import Message

try:
    import pytest
except ImportError:  # the demo simulator runs the server without pytest
    pytest = None  # type: ignore[assignment]

# Handlers still running when the server stops get this long before aiohttp
# cancels them; every one of ours returns promptly once its socket is gone.
SHUTDOWN_TIMEOUT_S = 1.0
# Bigger than any frame a test sends (oversized-frame tests stay below it).
SERVER_MAX_MSG_BYTES = 8 * 1024 * 1024

# JSON-RPC error codes the server answers with.
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601


class LoginMode(Enum):
    OK = "ok"  # check credentials, hand out a token
    FAIL = "fail"  # refuse every login with 401, whatever the credentials
    HANG = "hang"  # never answer (until released or the server stops)


class RpcFailure(Exception):
    """Raised by a custom method handler to answer with an error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RawBody:
    """An endpoint value sent verbatim (to serve malformed JSON)."""

    text: str


@dataclass(eq=False)  # identity: peers live in a set
class Peer:
    """One WebSocket connection as the server sees it."""

    index: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    ids: list[int] = field(default_factory=list)
    events: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


MethodHandler = Callable[[dict[str, Any]], Any]


class DeviceServer:
    """The fake controller. Start with :meth:`start`, stop with :meth:`stop`.

    Args:
        host: address to bind (loopback by default).
        port: port to bind; 0 picks a free one on the first start, and
            later starts reuse it so a client can reconnect to the same URL.
        username: the only accepted user name.
        password: its password.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "installer",
        password: str = "s3cret",
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        # Endpoint values served by GET /api/<name>, settable by the test.
        self.values: dict[str, Any] = {"/api/status": {"power_w": 0, "soc": 50}}
        # Paths this user may not read: GET answers the status (401/403) even
        # with a valid token, as a device with per-path permissions does.
        self.refused_paths: dict[str, int] = {}
        self.methods: dict[str, MethodHandler] = {}
        self.login_mode = LoginMode.OK
        self.require_auth = True
        # False: WebSocket requests are recorded but never answered.
        self.answering = True
        self.logins = 0
        self.login_attempts = 0
        self.connections = 0
        self.gets: Counter[str] = Counter()
        self.posts: list[tuple[str, Any]] = []
        # One list of received request ids per WebSocket connection, in order.
        self.received_ids: list[list[int]] = []
        self._tokens: set[str] = set()
        self._peers: set[Peer] = set()
        self._frozen = False
        self._get_failures: list[int] = []  # statuses for the next GETs
        self._get_hang = False
        self._release = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------
    # Lifecycle

    @property
    def url(self) -> str:
        """Base URL (``http://host:port``); valid once started."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen (again) on ``port``; the first start with port 0 picks one."""
        if self._runner is not None:
            return
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/api/login", self._login)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/api/{name}", self._get)
        app.router.add_post("/api/{name}", self._post)
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await runner.setup()
        # reuse_address: a restart binds the same port while the old
        # connections are still in TIME_WAIT.
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop like a device that loses power: sockets aborted, tokens forgotten."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._release.set()
        await self.drop()
        await runner.cleanup()
        self._tokens.clear()

    async def __aenter__(self) -> DeviceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------
    # Test controls

    @property
    def peers(self) -> list[Peer]:
        """Open WebSocket connections, oldest first."""
        return sorted(self._peers, key=lambda p: p.index)

    def hang_logins(self, hang: bool = True) -> None:
        """Make logins hang (True) or answer again (False)."""
        self.login_mode = LoginMode.HANG if hang else LoginMode.OK
        if not hang:
            self._release.set()
            self._release = asyncio.Event()

    def fail_logins(self, fail: bool = True) -> None:
        """Refuse every login with 401 (True) or check credentials again."""
        self.login_mode = LoginMode.FAIL if fail else LoginMode.OK

    def revoke_tokens(self) -> None:
        """Forget every token handed out (as a token expiry would)."""
        self._tokens.clear()

    def fail_gets(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` GETs of endpoints with ``status``."""
        self._get_failures.extend([status] * count)

    def hang_gets(self, hang: bool = True) -> None:
        """Make endpoint GETs hang (True) or answer again (False)."""
        self._get_hang = hang
        if not hang:
            self._release.set()
            self._release = asyncio.Event()

    async def push(self, event: str, data: Any) -> int:
        """Send ``{"event", "data"}`` to every peer subscribed to ``event``.

        Returns:
            How many connections it was sent to.
        """
        frame = json.dumps({"event": event, "data": data})
        targets = [p for p in self.peers if event in p.events]
        for peer in targets:
            await self._send(peer, frame)
        return len(targets)

    async def send_raw(self, frame: str | bytes) -> int:
        """Send ``frame`` verbatim to every connection (malformed-frame tests).

        Returns:
            How many connections it was sent to.
        """
        targets = self.peers
        for peer in targets:
            await self._send(peer, frame)
        return len(targets)

    async def drop(self) -> int:
        """Abort every WebSocket connection (no close handshake).

        Returns:
            How many connections were aborted.
        """
        peers = list(self._peers)
        for peer in peers:
            peer.transport.abort()
        return len(peers)

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) reading from every WebSocket connection, new ones
        included: requests and pings go unanswered while TCP stays up, as with
        a hung device."""
        self._frozen = frozen
        for peer in self._peers:
            if frozen:
                peer.transport.pause_reading()
            else:
                peer.transport.resume_reading()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; it is checked after every change
        the server sees (login, request, frame, connection opened or closed).

        Raises:
            TimeoutError: it did not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def _touch(self) -> None:
        """Wake every :meth:`wait_for`; each then re-checks its predicate."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------
    # HTTP handlers

    async def _login(self, request: web.Request) -> web.Response:
        self.login_attempts += 1
        self._touch()
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        # The body is read first: a client that gives up on a hanging login
        # leaves nothing half-read behind.
        if self.login_mode is LoginMode.HANG:
            await self._release.wait()
            if self._runner is None:
                return web.json_response({"error": "shutting down"}, status=503)
        if (
            self.login_mode is LoginMode.FAIL
            or not isinstance(body, dict)
            or body.get("username") != self.username
            or body.get("password") != self.password
        ):
            return web.json_response({"error": "bad credentials"}, status=401)
        token = secrets.token_urlsafe(16)
        self._tokens.add(token)
        self.logins += 1
        self._touch()
        return web.json_response({"token": token})

    def _authorized(self, request: web.Request) -> bool:
        if not self.require_auth:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme == "Bearer" and token in self._tokens

    async def _get(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        path = request.path
        self.gets[path] += 1
        self._touch()
        if self._get_hang:
            await self._release.wait()
        if self._get_failures:
            return web.json_response({"error": "injected"}, status=self._get_failures.pop(0))
        if path in self.refused_paths:
            return web.json_response({"error": "forbidden"}, status=self.refused_paths[path])
        if path not in self.values:
            return web.json_response({"error": "not found"}, status=404)
        value = self.values[path]
        if isinstance(value, RawBody):
            return web.Response(text=value.text, content_type="application/json")
        return web.json_response(value)

    async def _post(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        self.posts.append((request.path, body))
        self._touch()
        return web.json_response({"ok": True, "echo": body})

    # ------------------------------------------------------------------
    # WebSocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.require_auth and request.query.get("token") not in self._tokens:
            return web.json_response({"error": "unauthorized"}, status=401)
        ws = web.WebSocketResponse(max_msg_size=SERVER_MAX_MSG_BYTES)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None  # prepared: the connection is open
        self.connections += 1
        peer = Peer(index=self.connections, ws=ws, transport=transport)
        self.received_ids.append(peer.ids)
        self._peers.add(peer)
        if self._frozen:
            transport.pause_reading()
        self._touch()
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_frame(peer, msg.data)
        finally:
            self._peers.discard(peer)
            self._touch()
        return ws

    async def _on_frame(self, peer: Peer, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            await self._reply(peer, None, error=(INVALID_REQUEST, "not JSON"))
            return
        seq = frame.get("id") if isinstance(frame, dict) else None
        method = frame.get("method") if isinstance(frame, dict) else None
        if not isinstance(seq, int) or not isinstance(method, str):
            await self._reply(peer, seq, error=(INVALID_REQUEST, "need id and method"))
            return
        params = frame.get("params") or {}
        peer.ids.append(seq)
        peer.requests.append((method, params))
        self._touch()
        if not self.answering:
            return
        try:
            result = self._call(peer, method, params)
        except RpcFailure as err:
            await self._reply(peer, seq, error=(err.code, err.message))
            return
        await self._reply(peer, seq, result=result)

    def _call(self, peer: Peer, method: str, params: dict[str, Any]) -> Any:
        if method in self.methods:
            return self.methods[method](params)
        if method == "subscribe":
            peer.events.add(str(params.get("event")))
            return {"subscribed": params.get("event")}
        if method == "unsubscribe":
            peer.events.discard(str(params.get("event")))
            return {"unsubscribed": params.get("event")}
        if method == "echo":
            return params
        if method == "get":
            path = params.get("path")
            if path not in self.values:
                raise RpcFailure(404, f"no value at {path}")
            return self.values[path]
        raise RpcFailure(METHOD_NOT_FOUND, f"method {method} not found")

    async def _reply(
        self,
        peer: Peer,
        seq: Any,
        *,
        result: Any = None,
        error: tuple[int, str] | None = None,
    ) -> None:
        if error is not None:
            body: dict[str, Any] = {"id": seq, "error": {"code": error[0], "message": error[1]}}
        else:
            body = {"id": seq, "result": result}
        await self._send(peer, json.dumps(body))

    async def _send(self, peer: Peer, frame: str | bytes) -> None:
        # A peer that vanished mid-send is the client's problem to notice.
        with contextlib.suppress(ConnectionError, RuntimeError):
            if isinstance(frame, bytes):
                await peer.ws.send_bytes(frame)
            else:
                await peer.ws.send_str(frame)


class Inbox:
    """A link subscriber for tests: records every message and the thread it
    arrived on, and lets a test await a count of them."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.threads: set[int] = set()
        self._changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.threads.add(threading.get_ident())
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def payloads(self) -> list[Any]:
        return [m.payload for m in self.messages]

    async def wait_count(self, count: int, timeout: float = 5.0) -> list[Message]:
        """Wait until at least ``count`` messages arrived; returns them all.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                await self._changed.wait()
        return self.messages


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate()`` (every 5 ms) until it holds, for state that has no
    event to await (a link noticing a loss, sockets being released).

    Raises:
        TimeoutError: it did not hold within ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - nothing to await: polled with a deadline
            await asyncio.sleep(0.005)


if pytest is not None:

    @pytest.fixture
    async def device_server() -> AsyncIterator[DeviceServer]:
        """A started :class:`DeviceServer` on a free loopback port, always stopped."""
        server = DeviceServer()
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
