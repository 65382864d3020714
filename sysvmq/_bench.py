"""``sysvmq bench``: producer and consumer processes on a private queue, throughput then latency.

Phase one moves ``messages`` at full speed and counts messages and bytes a
second. Phase two sends at a paced rate (a tenth of phase one's unless told),
for about a second and never more messages than phase one, so that the latency
measured is the transfer's own; each message carries the monotonic clock at
sending, which is one clock for every process on Linux.

Whatever ends it (Ctrl-C, SIGTERM, SIGHUP, a closed standard output, a worker
that dies), the workers are ended and the queue is removed (see _procs).
"""

import multiprocessing
import struct
import time
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from . import SysVMQ
from ._procs import Signals, Workers, private_queue

DATA, STOP = 1, 2  # consumers take type <= STOP, lowest first: every DATA before any STOP
STAMP = struct.Struct("=q")  # time.monotonic_ns() at sending
BATCH = 64
LATENCY_SECONDS = 1.0
PROGRESS_EVERY = 1024
# The paced rate, as a fraction of the measured throughput, below which the
# queue can be said to stay nearly empty.
EMPTY_BELOW = 0.5


def _produce(q: SysVMQ, count: int, size: int, rate: Optional[float], start: Any) -> None:
    start.wait()
    if rate is None:
        payload = bytes(size)
        for done in range(0, count, BATCH):
            q.send_many([payload] * min(BATCH, count - done), DATA)
        return
    pad = bytes(size - STAMP.size)
    first = time.monotonic()
    for i in range(count):
        due = first + i / rate
        while True:
            late = due - time.monotonic()
            if late <= 0:
                break
            if late > 200e-6:
                time.sleep(late - 100e-6)
        q.send(STAMP.pack(time.monotonic_ns()) + pad, DATA)


def _consume(q: SysVMQ, timed: bool, seen: Any) -> Tuple[int, int, List[int]]:
    received = nbytes = reported = 0
    latencies: List[int] = []
    while True:
        batch = q.receive_many_messages(BATCH, -STOP)
        now = time.monotonic_ns()
        stops = 0
        for data, mtype in batch:
            if mtype == STOP:
                stops += 1
                continue
            received += 1
            nbytes += len(data)
            if timed:
                latencies.append(now - STAMP.unpack_from(data)[0])
        if received - reported >= PROGRESS_EVERY or stops:
            with seen.get_lock():
                seen.value += received - reported
            reported = received
        if stops:
            for _ in range(stops - 1):  # one STOP each: hand back the others'
                q.send(b"", STOP)
            return received, nbytes, latencies


def _phase(
    q: SysVMQ,
    signals: Signals,
    count: int,
    size: int,
    producers: int,
    consumers: int,
    rate: Optional[float],
    progress: Optional[TextIO],
    label: str,
) -> Tuple[float, int, int, List[int]]:
    """Run one phase; returns (seconds, messages, bytes, latencies in ns)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    start = ctx.Event()
    seen = ctx.Value("q", 0)
    shares = [count // producers + (1 if i < count % producers else 0) for i in range(producers)]
    each_rate = None if rate is None else rate / producers
    try:
        with Workers(ctx, q, signals) as workers:
            made = [workers.start("producer", _produce, n, size, each_rate, start) for n in shares]
            takers = [workers.start("consumer", _consume, rate is not None, seen) for _ in range(consumers)]
            began = time.perf_counter()
            start.set()
            for producer in made:
                while not producer.wait(0.1):
                    if progress is not None:
                        progress.write(f"\r{label}: {seen.value:,} of {count:,} messages ")
                        progress.flush()
                producer.receive()
            for _ in range(consumers):
                q.send(b"", STOP)
            results = [taker.receive() for taker in takers]
            seconds = time.perf_counter() - began
    finally:
        if progress is not None:
            progress.write("\r" + " " * 60 + "\r")
            progress.flush()
    latencies = [ns for _, _, lat in results for ns in lat]
    return seconds, sum(r[0] for r in results), sum(r[1] for r in results), latencies


def _percentile(ordered: List[int], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1e3


def run(
    *,
    size: int = 64,
    messages: int = 200_000,
    producers: int = 1,
    consumers: int = 1,
    rate: Optional[int] = None,
    progress: Optional[TextIO] = None,
    note: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Measure, on a private queue it creates and removes; returns the figures (see describe).

    ``note`` hears which queue it made and that it removed it.

    Raises:
        Stopped: SIGINT, SIGTERM or SIGHUP (the workers are ended, the queue removed).
        WorkerFailed: a worker died or failed before its work was done.
    """
    with Signals() as signals, private_queue(signals, note) as q:
        limit = q.stats().max_size
        seconds, moved, nbytes, _ = _phase(
            q, signals, messages, size, producers, consumers, None, progress, "throughput"
        )
        throughput = moved / seconds
        paced = float(rate) if rate else max(throughput / 10, 1.0)
        # About LATENCY_SECONDS of sending, and never more messages than phase one moved.
        count = max(1, min(messages, int(paced * LATENCY_SECONDS)))
        stamped = max(size, STAMP.size)  # a message carries its sending time
        _, timed, _, latencies = _phase(q, signals, count, stamped, producers, consumers, paced, progress, "latency")
    latencies.sort()
    return {
        "size": size,
        "producers": producers,
        "consumers": consumers,
        "queue_max_bytes": limit,
        "throughput": {
            "messages": moved,
            "seconds": round(seconds, 6),
            "messages_per_second": round(throughput),
            "megabytes_per_second": round(nbytes / seconds / 1e6, 3),
        },
        "latency": {
            "rate": round(paced),
            "messages": timed,
            "message_bytes": stamped,
            "p50_us": round(_percentile(latencies, 0.50), 1),
            "p99_us": round(_percentile(latencies, 0.99), 1),
            "p999_us": round(_percentile(latencies, 0.999), 1),
            "max_us": round(latencies[-1] / 1e3, 1),
        },
        "latency_samples_ns": latencies,  # for --plot; sorted
    }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def describe(r: Dict[str, Any]) -> str:
    """The figures in words a newcomer reads."""
    t, lat = r["throughput"], r["latency"]
    workers = f"{_count(r['producers'], 'producer')}, {_count(r['consumers'], 'consumer')}"
    if lat["rate"] <= t["messages_per_second"] * EMPTY_BELOW:
        pace = "so the queue stays nearly empty"
    elif lat["rate"] < t["messages_per_second"]:
        pace = "close to the measured throughput, so messages may wait in the queue and the latency includes the wait"
    else:
        pace = "at or above the measured throughput, so the queue fills and the latency includes the wait in it"
    return (
        f"sysvmq bench: {workers} (separate processes), {r['size']}-byte messages, "
        f"one private queue holding up to {r['queue_max_bytes']:,} bytes\n"
        f"  throughput  {_count(t['messages'], 'message')} in {t['seconds']:.2f} s: "
        f"{t['messages_per_second']:,} messages/s, {t['megabytes_per_second']:.1f} MB/s\n"
        f"  latency     {_count(lat['messages'], 'message')} sent at {lat['rate']:,}/s "
        f"({pace}), from send to receive:\n"
        f"              median {lat['p50_us']:,.0f} us, p99 {lat['p99_us']:,.0f} us, "
        f"p99.9 {lat['p999_us']:,.0f} us, worst {lat['max_us']:,.0f} us"
    )
