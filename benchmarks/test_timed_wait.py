"""Timed waits: how soon a receive(timeout=...) takes a message that arrives, and the CPU it burns waiting.

SysV has no timed msgrcv, so a timed receive polls with IPC_NOWAIT and a capped
backoff. These two figures are its cost; they land in ``extra_info`` and in the
table ``benchmarks/report.py`` prints.
"""

import contextlib
import multiprocessing
import random
import statistics
import struct
import time
from typing import List

import sysvmq

ROUNDS = 60
STAMP = struct.Struct("d")


def _paced_sender(q: sysvmq.SysVMQ, rounds: int) -> None:
    # Another process, spinning (not sleeping) to a random instant, so that its
    # wake-ups never line up with the waiter's polls and no GIL is shared.
    rng = random.Random(7)
    for _ in range(rounds):
        due = time.monotonic() + rng.uniform(0.01, 0.03)
        while time.monotonic() < due:
            pass
        q.send(STAMP.pack(time.monotonic()))


def test_wakeup_latency_of_timed_receive(benchmark, queue: sysvmq.SysVMQ) -> None:  # type: ignore[no-untyped-def]
    latencies: List[float] = []

    def one_wakeup() -> None:
        (sent,) = STAMP.unpack(queue.receive(timeout=10))
        latencies.append(time.monotonic() - sent)

    sender = multiprocessing.get_context("fork").Process(target=_paced_sender, args=(queue, ROUNDS))
    sender.start()
    try:
        benchmark.pedantic(one_wakeup, rounds=ROUNDS, iterations=1)
    finally:
        sender.join(30)
    latencies.sort()
    benchmark.extra_info.update(
        wakeup_median_ms=statistics.median(latencies) * 1e3,
        wakeup_p95_ms=latencies[int(len(latencies) * 0.95)] * 1e3,
        wakeup_max_ms=latencies[-1] * 1e3,
    )


def test_cpu_while_waiting(benchmark, queue: sysvmq.SysVMQ) -> None:  # type: ignore[no-untyped-def]
    wait = 0.5
    shares: List[float] = []

    def one_wait() -> None:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        with contextlib.suppress(sysvmq.QueueEmpty):
            queue.receive(timeout=wait)
        shares.append((time.thread_time() - cpu0) / (time.perf_counter() - wall0))

    benchmark.pedantic(one_wait, rounds=4, iterations=1)
    benchmark.extra_info.update(cpu_percent_of_a_core=statistics.median(shares) * 100)
