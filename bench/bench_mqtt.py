"""MQTT figures (issues 2, 12 and 22): ingest rate through MqttLink vs raw
paho, recovery after a broker restart, resubscribe cost, event-loop lag under
load at QoS 0 and 1 (MqttLink vs paho's own network thread), a healthy
link's connect time while other links hang connecting to a dead path.

``python -m bench mqtt`` runs it all; ``GRIDWATCH_BENCH_MQTT=lag`` (or
``ingest``, ``recovery``, ``resets``, ``stuck``, comma-separated) runs only
those parts.

Everything runs against one mosquitto started here on a free loopback port.

Ingest: each consumer first subscribes with a persistent session and goes
offline; a publisher process then queues N messages at the broker; the
consumer reconnects and drains them. The figure is the consumer's own
capacity (first to last message), not the publisher's, and both consumers
(raw paho with its ``loop_start`` thread, and MqttLink feeding an asyncio
queue read by a consumer task) drain the same amount from the same broker.

The publisher is this module run as a script in a subprocess, so it never
competes with the measured event loop for the GIL::

    python -m bench.bench_mqtt publish HOST PORT TOPIC COUNT QOS RATE
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import Row, progress, row

INGEST_COUNT = 100_000
LAG_RATE = 4_700  # messages per second (the rate of the independent fault run)
LAG_SECONDS = 5.0
RESTARTS = 3
RESUBSCRIBE_TOPICS = 1_000
# A consumer that received nothing new for this long has all it will get.
IDLE_S = 3.0
BROKER_CONFIG = [
    # Queue everything for an offline persistent session, without limit, so
    # the drained count equals the published count unless a client drops.
    "max_queued_messages 0",
    "queue_qos0_messages true",
]


def payload(seq: int) -> bytes:
    """A small JSON reading, as a device gateway would send."""
    return b'{"seq":%d,"power_w":%d.5,"unit":"W"}' % (seq, 1000 + seq % 500)


def seq_of(data: bytes) -> int:
    return int(data[7 : data.index(b",")])


# ----------------------------------------------------------------------
# Publisher (runs in a subprocess)


def publish_main(argv: list[str]) -> int:
    """Publish COUNT messages on TOPIC/<n % 10> at QOS, at RATE per second
    (0: as fast as possible), then confirm the broker processed them all."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port, topic, count, qos, rate = (
        argv[0],
        int(argv[1]),
        argv[2],
        int(argv[3]),
        int(argv[4]),
        float(argv[5]),
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect(host, port, 60)
    client.loop_start()
    try:
        if not connected.wait(10):
            print("publisher: no CONNACK", file=sys.stderr)
            return 1
        started = time.monotonic()
        last = None
        for seq in range(count):
            last = client.publish(f"{topic}/{seq % 10}", payload(seq), qos)
            if qos and seq % 10_000 == 9_999:
                # MQTT message ids are 16 bit: never have more in flight.
                last.wait_for_publish(120)
            if rate and seq % 50 == 49:
                ahead = started + (seq + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        if last is not None and qos > 0:
            last.wait_for_publish(120)
        # QoS 1 barrier on another topic: the broker handles one client's
        # packets in order, so its PUBACK means every earlier one was routed.
        client.publish(f"{topic}-barrier", b"", 1).wait_for_publish(120)
        # In-order acks do not imply all acks: wait for the outstanding ones.
        deadline = time.monotonic() + 120
        while client._out_messages and time.monotonic() < deadline:
            time.sleep(0.01)
        return 0
    finally:
        client.disconnect()
        client.loop_stop()


async def run_publisher(
    host: str, port: int, topic: str, count: int, qos: int, rate: float
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bench_mqtt",
        "publish",
        host,
        str(port),
        topic,
        str(count),
        str(qos),
        str(rate),
    )
    try:
        async with asyncio.timeout(300):
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if code != 0:
        raise RuntimeError(f"publisher exited with {code}")


# ----------------------------------------------------------------------
# Ingest


class Tally:
    """Counts distinct sequence numbers and the first/last arrival times."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.unique = 0
        self.total = 0
        self.first = 0.0
        self.last = 0.0

    def add(self, data: bytes) -> bool:
        """Record one payload; True when all expected ones are in."""
        now = time.perf_counter()
        if not self.total:
            self.first = now
        self.last = now
        self.total += 1
        seq = seq_of(data)
        if not self.seen[seq]:
            self.seen[seq] = 1
            self.unique += 1
        return self.unique == self.expected

    @property
    def rate(self) -> float:
        span = self.last - self.first
        return (self.total - 1) / span if span > 0 else 0.0


def _raw_client(client_id: str, tally: Tally | None, done: threading.Event) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        if tally is not None and tally.add(msg.payload):
            done.set()

    client.on_message = on_message
    return client


def raw_subscribe(host: str, port: int, client_id: str, topic: str, qos: int) -> None:
    """Create the persistent session with its subscription, then go offline."""
    acked = threading.Event()
    client = _raw_client(client_id, None, threading.Event())
    client.on_subscribe = lambda *a: acked.set()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos)
    client.connect(host, port, 60)
    client.loop_start()
    try:
        if not acked.wait(10):
            raise RuntimeError("raw paho: no SUBACK")
    finally:
        client.disconnect()
        client.loop_stop()


def raw_drain(host: str, port: int, client_id: str, tally: Tally) -> None:
    """Reconnect the persistent session and count what the broker delivers."""
    done = threading.Event()
    client = _raw_client(client_id, tally, done)
    client.connect(host, port, 60)
    client.loop_start()
    try:
        _wait_drained(tally, done.is_set, time.sleep)
    finally:
        client.disconnect()
        client.loop_stop()


def _wait_drained(tally: Tally, finished: Any, sleep: Any) -> None:
    last_total, last_change = -1, time.monotonic()
    while not finished():
        if tally.total != last_total:
            last_total, last_change = tally.total, time.monotonic()
        elif time.monotonic() - last_change > IDLE_S:
            return
        sleep(0.05)


async def ingest_once(host: str, port: int, qos: int) -> dict[str, Tally]:
    """Queue one publish run for both consumers' offline sessions, then let
    each drain it in turn: same messages, same broker, same run."""
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

    tag = uuid.uuid4().hex[:4]
    base = f"bench/ingest/q{qos}-{tag}"
    raw_id, link_id = f"bench-raw-q{qos}-{tag}", f"bench-link-q{qos}-{tag}"
    settings = MqttSettings(host=host, port=port, client_id=link_id, clean_session=False)
    link = MqttLink("bench", settings)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    await asyncio.to_thread(raw_subscribe, host, port, raw_id, f"{base}/#", qos)
    await link.subscribe(f"{base}/#", queue.put_nowait, qos=qos)
    await link.connect(timeout=10)
    await link.disconnect()
    progress(f"publish {INGEST_COUNT:,} msgs at QoS {qos} into both offline sessions")
    await run_publisher(host, port, base, INGEST_COUNT, qos, 0)

    progress(f"drain QoS {qos} via raw paho")
    raw = Tally(INGEST_COUNT)
    await asyncio.to_thread(raw_drain, host, port, raw_id, raw)

    progress(f"drain QoS {qos} via MqttLink")
    tally = Tally(INGEST_COUNT)
    done = asyncio.Event()

    async def consume() -> None:
        while True:
            message = await queue.get()
            if tally.add(message.payload):
                done.set()

    consumer = asyncio.create_task(consume())
    try:
        await link.connect(timeout=10)
        last_total, last_change = -1, time.monotonic()
        while not done.is_set():
            if tally.total != last_total:
                last_total, last_change = tally.total, time.monotonic()
            elif time.monotonic() - last_change > IDLE_S:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await done.wait()
    finally:
        consumer.cancel()
        await link.disconnect()
    return {"raw paho": raw, "MqttLink": tally}


async def ingest_rows(host: str, port: int) -> list[Row]:
    rows: list[Row] = []
    for qos in (0, 1):
        results = await ingest_once(host, port, qos)
        raw, link = results["raw paho"], results["MqttLink"]
        for kind, tally in results.items():
            rows.append(
                row(
                    f"ingest QoS {qos}: {kind}",
                    tally.rate,
                    "msg/s",
                    note=f"{tally.unique:,} of {INGEST_COUNT:,} distinct, {tally.total:,} total",
                )
            )
            rows.append(
                row(
                    f"ingest QoS {qos}: {kind} loss",
                    INGEST_COUNT - tally.unique,
                    "msgs",
                    goal="0" if qos else "",
                )
            )
        ratio = link.rate / raw.rate if raw.rate else 0.0
        rows.append(row(f"ingest QoS {qos}: MqttLink / raw paho", ratio, "", goal=">= 0.8"))
    return rows


# ----------------------------------------------------------------------
# Draining a persistent-session backlog through resets (issue 12)

# Short enough that a connection cannot drain the backlog before the reset
# (each carries some 10,000 messages), as in the independent fault run.
RESET_EVERY_S = 0.25
DRAIN_CAP_S = 120.0


async def reset_drain_rows(host: str, port: int) -> list[Row]:
    """Queue INGEST_COUNT QoS 1 messages for an offline persistent session,
    then drain them through a proxy that resets the connection every
    RESET_EVERY_S: MqttLink (default backoff) against paho's own reconnect."""
    rows: list[Row] = []
    for kind, consumer in (("MqttLink", _link_session), ("raw paho", _raw_session)):
        rows.append(await _reset_drain(host, port, kind, consumer))
    return rows


async def _reset_drain(host: str, port: int, kind: str, consumer: Any) -> Row:
    from tests.support.fault_proxy import FaultProxy

    tag = uuid.uuid4().hex[:4]
    base = f"bench/rst/{tag}"
    proxy = await FaultProxy(host, port).start()
    tally = Tally(INGEST_COUNT)
    try:
        # Creates the persistent session (offline) and returns its start/stop.
        start, stop = await consumer(proxy, f"bench-rst-{tag}", f"{base}/#", tally)
        progress(
            f"queue {INGEST_COUNT:,} QoS 1 msgs; drain via {kind}, reset every {RESET_EVERY_S} s"
        )
        await run_publisher(host, port, base, INGEST_COUNT, 1, 0)
        started = time.monotonic()
        await start()
        cuts = 0
        try:
            while tally.unique < INGEST_COUNT and time.monotonic() - started < DRAIN_CAP_S:
                await asyncio.sleep(RESET_EVERY_S)
                cuts += proxy.cut() > 0
        finally:
            await stop()
        took = time.monotonic() - started
    finally:
        await proxy.close()
    return row(
        f"drain {INGEST_COUNT:,} queued QoS 1 msgs, RST every {RESET_EVERY_S:g} s: {kind}",
        took if tally.unique == INGEST_COUNT else f"> {DRAIN_CAP_S:g}",
        "s",
        note=f"{tally.unique:,} of {INGEST_COUNT:,} distinct, {cuts} resets",
    )


async def _link_session(proxy: Any, client_id: str, topic: str, tally: Tally) -> Any:
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

    settings = MqttSettings(
        host=proxy.host, port=proxy.port, client_id=client_id, clean_session=False
    )
    link = MqttLink("rst", settings)
    await link.subscribe(topic, lambda m: tally.add(m.payload), qos=1)
    await link.connect(timeout=10)
    await link.disconnect()

    async def start() -> None:
        link.start()

    return start, link.disconnect


async def _raw_session(proxy: Any, client_id: str, topic: str, tally: Tally) -> Any:
    await asyncio.to_thread(raw_subscribe, proxy.host, proxy.port, client_id, topic, 1)
    client = _raw_client(client_id, tally, threading.Event())

    async def start() -> None:
        # loop_start reconnects by itself (1 s, doubling to 120 s).
        client.connect_async(proxy.host, proxy.port, 60)
        client.loop_start()

    async def stop() -> None:
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    return start, stop


# ----------------------------------------------------------------------
# Recovery and resubscribe


async def recovery_rows(broker: Any) -> list[Row]:
    from gridwatch.transport.backoff_policy import BackoffPolicy
    from gridwatch.transport.errors import TransportError
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

    host, port = broker.host, broker.port
    topic = f"bench/recovery/{uuid.uuid4().hex[:6]}"
    sleeps: list[tuple[float, float]] = []

    async def recording_sleep(delay: float) -> None:
        sleeps.append((time.perf_counter(), delay))
        await asyncio.sleep(delay)

    # The real schedule (1 s first retry), but "stable" after half a second
    # so every restart starts the schedule over.
    subject = MqttLink(
        "subject",
        MqttSettings(host=host, port=port),
        backoff=BackoffPolicy(stable_after_s=0.5),
        sleep=recording_sleep,
    )
    publisher = MqttLink(
        "publisher",
        MqttSettings(host=host, port=port),
        backoff=BackoffPolicy(initial_s=0.01, cap_s=0.05, stable_after_s=0.5),
    )
    arrivals: list[float] = []
    arrived = asyncio.Event()

    def on_message(message: Any) -> None:
        arrivals.append(time.perf_counter())
        arrived.set()

    def recovered() -> bool:
        return bool(sleeps and arrivals and arrivals[-1] > sleeps[-1][0] + sleeps[-1][1])

    async def keep_publishing() -> None:
        seq = 0
        while True:
            if publisher.connected:
                seq += 1
                # Publishing races the broker restart; a miss is expected.
                with contextlib.suppress(TransportError):
                    await publisher.publish(topic, str(seq))
            await asyncio.sleep(0.005)

    await subject.subscribe(topic, on_message)
    await subject.connect(timeout=10)
    publisher.start()
    pumping = asyncio.create_task(keep_publishing())
    beyond: list[float] = []
    outage: list[float] = []
    try:
        async with asyncio.timeout(10):
            await arrived.wait()
        for i in range(RESTARTS):
            progress(f"broker restart {i + 1}/{RESTARTS}")
            await asyncio.sleep(0.6)  # connected long enough to count as stable
            sleeps.clear()
            stopped = time.perf_counter()
            await broker.arestart()
            async with asyncio.timeout(30):
                while not recovered():
                    arrived.clear()
                    await arrived.wait()
            slept_at, delay = sleeps[-1]
            first = next(t for t in arrivals if t > slept_at + delay)
            beyond.append(first - (slept_at + delay))
            outage.append(first - stopped)
    finally:
        pumping.cancel()
        await subject.disconnect()
        await publisher.disconnect()
    rows = [
        row(
            "recovery: broker restart -> first message, beyond backoff (median)",
            statistics.median(beyond) * 1000,
            "ms",
            goal="< 200",
            note=f"{RESTARTS} restarts, max {max(beyond) * 1000:.1f} ms",
        ),
        row(
            "recovery: broker restart -> first message, total (median)",
            statistics.median(outage) * 1000,
            "ms",
            note="includes the ~1 s first backoff delay",
        ),
    ]
    rows += await resubscribe_rows(host, port)
    return rows


async def resubscribe_rows(host: str, port: int) -> list[Row]:
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

    rows: list[Row] = []
    for count in (0, RESUBSCRIBE_TOPICS):
        link = MqttLink("resub", MqttSettings(host=host, port=port))
        arrived = asyncio.Event()
        base = f"bench/resub/{uuid.uuid4().hex[:6]}"
        for i in range(count):
            await link.subscribe(f"{base}/{i}", lambda m, done=arrived: done.set(), qos=1)
        durations = []
        for _ in range(3):
            arrived.clear()
            started = time.perf_counter()
            # connect() returns once the SUBSCRIBE is sent; the subscription
            # is in force when a message on the last topic comes back.
            await link.connect(timeout=10)
            if count:
                await link.publish(f"{base}/{count - 1}", b"x", qos=1)
                async with asyncio.timeout(10):
                    await arrived.wait()
            durations.append(time.perf_counter() - started)
            await link.disconnect()
        rows.append(
            row(
                f"connect + resubscribe {count:,} topics until one delivers (median of 3)",
                statistics.median(durations) * 1000,
                "ms",
                goal="< 1000" if count else "",
            )
        )
    return rows


# ----------------------------------------------------------------------
# Event-loop lag under load


async def lag_rows(host: str, port: int) -> list[Row]:
    """Event-loop lag while messages stream in at LAG_RATE, for MqttLink
    (paho driven from the loop) and for plain paho on its own network thread
    handing each message to the loop with ``call_soon_threadsafe`` (what the
    design allows for a foreign thread), at QoS 0 and QoS 1 (issue 12)."""
    rows: list[Row] = []
    idle = await _probe_lag(asyncio.sleep(2.0))
    rows.append(row("event-loop lag p99, idle", _p(idle, 99) * 1000, "ms"))
    for qos in (0, 1):
        for kind, consumer in (("MqttLink", _link_consumer), ("paho thread", _thread_consumer)):
            rows += await _lag_case(host, port, qos, kind, consumer)
    return rows


async def _lag_case(host: str, port: int, qos: int, kind: str, consumer: Any) -> list[Row]:
    base = f"bench/lag/{uuid.uuid4().hex[:6]}"
    count = int(LAG_RATE * LAG_SECONDS)
    tally = Tally(count)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    all_in = asyncio.Event()

    async def consume() -> None:
        while True:
            if tally.add(await queue.get()):
                all_in.set()

    consumer_task = asyncio.create_task(consume())
    stop = await consumer(host, port, f"{base}/#", qos, queue.put_nowait)
    try:
        progress(f"lag probe, {kind}, QoS {qos}, {LAG_RATE:,} msg/s for {LAG_SECONDS:.0f} s")
        cpu_before = time.process_time()
        loaded = await _probe_lag(run_publisher(host, port, base, count, qos, LAG_RATE))
        # Let the last messages land (bounded: a lost one never comes).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await all_in.wait()
        cpu = time.process_time() - cpu_before
    finally:
        consumer_task.cancel()
        await stop()
    label = f"QoS {qos}, {kind}"
    return [
        row(
            f"event-loop lag p99, {LAG_RATE:,} msg/s, {label}",
            _p(loaded, 99) * 1000,
            "ms",
            goal="< 10",
            note=f"p50 {_p(loaded, 50) * 1000:.2f} ms, max {max(loaded) * 1000:.1f} ms, "
            f"{len(loaded):,} probes, {count - tally.unique} lost, {tally.rate:,.0f} msg/s",
        ),
        row(
            f"process CPU per message, {label}",
            cpu / max(tally.total, 1) * 1e6,
            "us",
            note="whole consumer process incl. the lag probe",
        ),
    ]


async def _link_consumer(host: str, port: int, topic: str, qos: int, sink: Any) -> Any:
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

    link = MqttLink("lag", MqttSettings(host=host, port=port))
    await link.subscribe(topic, lambda message: sink(message.payload), qos=qos)
    await link.connect(timeout=10)
    return link.disconnect


async def _thread_consumer(host: str, port: int, topic: str, qos: int, sink: Any) -> Any:
    """Plain paho with ``loop_start``: parsing and acks on paho's thread,
    each payload handed to the loop."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    loop = asyncio.get_running_loop()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-lag-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda _c, _u, msg: loop.call_soon_threadsafe(sink, msg.payload)
    client.on_connect = lambda c, *_a: c.subscribe(topic, qos)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(host, port, 60)
    client.loop_start()
    if not await asyncio.to_thread(subscribed.wait, 10):
        raise RuntimeError("paho thread consumer: no SUBACK")

    async def stop() -> None:
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    return stop


async def _probe_lag(work: Any) -> list[float]:
    """Run ``work`` while measuring how late 5 ms sleeps wake up."""
    lags: list[float] = []
    task = asyncio.ensure_future(work)
    while not task.done():
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(max(0.0, time.perf_counter() - started - 0.005))
    await task
    return lags


def _p(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


# ----------------------------------------------------------------------


async def _with_deep_broker(workdir: str, bench: Any) -> list[Row]:
    """Run ``bench(host, port)`` against a broker with no in-flight window,
    which sends a whole persistent-session backlog at once: the SUBACK of a
    resubscribe then waits behind it (the case issue 12 found)."""
    from tests.support.mosquitto import Mosquitto

    deep = Path(workdir) / "deep"
    deep.mkdir()
    broker = Mosquitto(deep, extra_config=[*BROKER_CONFIG, "max_inflight_messages 0"])
    await broker.astart()
    try:
        rows: list[Row] = await bench(broker.host, broker.port)
    finally:
        await broker.astop()
    return rows


STUCK_LINKS = 12  # more than the default executor's threads on a small box
STUCK_CONNECT_TIMEOUT_S = 4.0  # the fault run's short socket connect timeout


async def stuck_connect_rows(host: str, port: int) -> list[Row]:
    """A healthy link's connect, alone and while ``STUCK_LINKS`` links hang
    in their TCP connect to a port that drops SYNs (issue 22: with paho's
    blocking connect in the shared executor it waited for them, ~4 s)."""
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
    from tests.transport.mqtt_helpers import syn_dropping_listener

    progress("stuck connects")

    async def healthy_connect_ms() -> float:
        link = MqttLink("healthy", MqttSettings(host=host, port=port))
        started = time.perf_counter()
        await link.connect(timeout=30)
        took = time.perf_counter() - started
        await link.disconnect()
        return took * 1000

    alone = statistics.median([await healthy_connect_ms() for _ in range(5)])
    with syn_dropping_listener() as server:
        dead_port = server.getsockname()[1]
        crowded = await _connect_ms_among_stuck(dead_port, healthy_connect_ms)
    return [
        row("healthy connect, alone (median of 5)", alone, "ms"),
        row(
            f"healthy connect, {STUCK_LINKS} links hanging in connect (median of 5)",
            crowded,
            "ms",
            note=f"was ~{STUCK_CONNECT_TIMEOUT_S:g} s with connects in the shared executor",
        ),
    ]


async def _connect_ms_among_stuck(dead_port: int, healthy_connect_ms: Any) -> float:
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

    dead = [
        MqttLink(
            f"dead{i}",
            MqttSettings(
                host="127.0.0.1", port=dead_port, socket_connect_timeout_s=STUCK_CONNECT_TIMEOUT_S
            ),
        )
        for i in range(STUCK_LINKS)
    ]
    try:
        for link in dead:
            link.start()
        await asyncio.sleep(0.2)
        return float(statistics.median([await healthy_connect_ms() for _ in range(5)]))
    finally:
        for link in dead:
            await link.disconnect()


async def run() -> list[Row]:
    """All MQTT figures, against a mosquitto started (and stopped) here."""
    from tests.support.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="bench-mosquitto-") as workdir:
        broker = Mosquitto(Path(workdir), extra_config=BROKER_CONFIG)
        await broker.astart()
        try:
            parts = os.environ.get(
                "GRIDWATCH_BENCH_MQTT", "ingest,lag,recovery,resets,stuck"
            ).split(",")
            rows = []
            if "ingest" in parts:
                rows += await ingest_rows(broker.host, broker.port)
            if "lag" in parts:
                rows += await lag_rows(broker.host, broker.port)
            if "recovery" in parts:
                rows += await recovery_rows(broker)
            if "resets" in parts:
                rows += await _with_deep_broker(workdir, reset_drain_rows)
            if "stuck" in parts:
                rows += await stuck_connect_rows(broker.host, broker.port)
        finally:
            await broker.astop()
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publish":
        sys.exit(publish_main(sys.argv[2:]))
    print("usage: python -m bench.bench_mqtt publish HOST PORT TOPIC COUNT QOS RATE")
    sys.exit(2)
