"""``sysvmq bench``: producer and consumer processes on a private queue, throughput then latency.

Phase one moves ``messages`` at full speed and counts messages and bytes a
second. Phase two sends at a paced rate (a tenth of phase one's unless told),
so that the queue stays nearly empty and the latency measured is the
transfer's own; each message carries the monotonic clock at sending, which is
one clock for every process on Linux.
"""

import multiprocessing
import signal
import struct
import time
from typing import Any, Dict, List, Optional, TextIO, Tuple

from ._errors import QueueRemoved
from ._queue import SysVMQ

DATA, STOP = 1, 2  # consumers take type <= STOP, lowest first: every DATA before any STOP
STAMP = struct.Struct("=q")  # time.monotonic_ns() at sending
BATCH = 64
LATENCY_SECONDS = 1.0
PROGRESS_EVERY = 1024


def _quiet() -> None:
    # The parent handles Ctrl-C; its workers just stop when it ends them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _produce(q: SysVMQ, count: int, size: int, rate: Optional[float], start: Any) -> None:
    _quiet()
    start.wait()
    try:
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
    except QueueRemoved:
        pass


def _consume(q: SysVMQ, timed: bool, seen: Any, out: Any) -> None:
    _quiet()
    received = nbytes = reported = 0
    latencies: List[int] = []
    try:
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
                break
    except QueueRemoved:
        pass
    out.send((received, nbytes, latencies))


def _phase(
    q: SysVMQ,
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
    workers = [ctx.Process(target=_produce, args=(q, n, size, each_rate, start), daemon=True) for n in shares]
    pipes = []
    for _ in range(consumers):
        mine, theirs = ctx.Pipe(duplex=False)
        pipes.append(mine)
        workers.append(ctx.Process(target=_consume, args=(q, rate is not None, seen, theirs), daemon=True))
    try:
        for w in workers:
            w.start()
        began = time.perf_counter()
        start.set()
        for w in workers[:producers]:
            while True:
                if progress is not None:
                    progress.write(f"\r{label}: {seen.value:,} of {count:,} messages ")
                    progress.flush()
                w.join(0.1)
                if not w.is_alive():
                    break
        for _ in range(consumers):
            q.send(b"", STOP)
        results = [pipe.recv() for pipe in pipes]
        seconds = time.perf_counter() - began
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
            w.join()
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
) -> Dict[str, Any]:
    """Measure, on a private queue it creates and removes; returns the figures (see describe)."""
    q = SysVMQ.private()
    try:
        limit = q.stats().max_size
        seconds, moved, nbytes, _ = _phase(q, messages, size, producers, consumers, None, progress, "throughput")
        throughput = moved / seconds
        paced = float(rate) if rate else max(throughput / 10, 1.0)
        count = max(100, min(messages, int(paced * LATENCY_SECONDS)))
        stamped = max(size, STAMP.size)  # a message carries its sending time
        _, timed, _, latencies = _phase(q, count, stamped, producers, consumers, paced, progress, "latency")
    finally:
        q.destroy()
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
    return f"{n} {noun}{'s' if n != 1 else ''}"


def describe(r: Dict[str, Any]) -> str:
    """The figures in words a newcomer reads."""
    t, lat = r["throughput"], r["latency"]
    workers = (
        f"{r['producers']} producer{'s' * (r['producers'] > 1)}, {r['consumers']} consumer{'s' * (r['consumers'] > 1)}"
    )
    return (
        f"sysvmq bench: {workers} (separate processes), {r['size']}-byte messages, "
        f"one private queue holding up to {r['queue_max_bytes']:,} bytes\n"
        f"  throughput  {t['messages']:,} messages in {t['seconds']:.2f} s: "
        f"{t['messages_per_second']:,} messages/s, {t['megabytes_per_second']:.1f} MB/s\n"
        f"  latency     {lat['messages']:,} messages sent at {lat['rate']:,}/s "
        f"(so the queue stays nearly empty), from send to receive:\n"
        f"              median {lat['p50_us']:,.0f} us, p99 {lat['p99_us']:,.0f} us, "
        f"p99.9 {lat['p999_us']:,.0f} us, worst {lat['max_us']:,.0f} us"
    )
