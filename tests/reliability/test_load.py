"""Exactly once under load: 4 producer and 4 consumer processes, 50,000 checked messages per producer."""

import multiprocessing
import multiprocessing.connection
import random
import time
import zlib
from typing import Any, Dict, List, Sequence

import pytest
from harness import HEADER, WAKE, audit, check, make, plan

import sysvmq
from sysvmq import SysVMQ

PRODUCERS = CONSUMERS = 4
PER_PRODUCER = 50_000
TYPES = 5
MAX_PAYLOAD = 4096
DEADLINE = 300.0
WAKE_MESSAGE = HEADER.pack(WAKE, 0, zlib.crc32(b""), 0)


def _produce(q: SysVMQ, producer: int, seed: int, start: Any) -> None:
    types = plan(producer, PER_PRODUCER, TYPES, seed)
    rng = random.Random(seed * 7 + producer)
    start.wait()
    for seq, mtype in enumerate(types):
        q.send(make(producer, seq, rng, MAX_PAYLOAD), mtype)


def _consume(q: SysVMQ, selector: int, modes: Sequence[str], total: int, counter: Any, done: Any, out: Any) -> None:
    got = []
    calls = 0
    while True:
        mode = modes[calls % len(modes)]
        calls += 1
        try:
            if mode == "block":
                data, mtype = q.receive_message(selector)
            elif mode == "nowait":
                data, mtype = q.receive_message(selector, block=False)
            else:
                data, mtype = q.receive_message(selector, timeout=0.01)
        except sysvmq.QueueEmpty:
            if done.is_set():
                break
            continue
        producer, seq = check(data)
        if producer == WAKE:
            if done.is_set():
                break
            continue
        got.append((producer, mtype, seq))
        with counter.get_lock():
            counter.value += 1
            if counter.value == total:
                done.set()
    out.send(got)


def run_load(q: SysVMQ, selectors: List[int], modes: List[List[str]], seed: int) -> Dict[str, Any]:
    ctx: Any = multiprocessing.get_context("fork")
    total = PRODUCERS * PER_PRODUCER
    start, done, counter = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    workers = [ctx.Process(target=_produce, args=(q, p, seed, start)) for p in range(PRODUCERS)]
    consumers, pipes = [], []
    for selector, mine in zip(selectors, modes):
        theirs_out, ours_in = ctx.Pipe(duplex=False)
        pipes.append(theirs_out)
        consumers.append(ctx.Process(target=_consume, args=(q, selector, mine, total, counter, done, ours_in)))
    for w in workers + consumers:
        w.start()
    began = time.monotonic()
    start.set()
    try:
        finished = done.wait(DEADLINE)
        elapsed = time.monotonic() - began
        # Consumers blocked in msgrcv wake on a message they select; any may take any wake-up.
        results: Dict[int, List[Any]] = {}
        while len(results) < len(pipes) and time.monotonic() - began < DEADLINE + 30:
            for i, selector in enumerate(selectors):
                if i not in results:
                    q.send(WAKE_MESSAGE, selector if selector > 0 else 1)
            for conn in multiprocessing.connection.wait([p for i, p in enumerate(pipes) if i not in results], 0.05):
                results[pipes.index(conn)] = conn.recv()  # type: ignore[union-attr]
    finally:
        for w in workers + consumers:
            if w.is_alive():
                w.kill()
            w.join()
    assert finished, f"only {counter.value} of {total} messages arrived in {DEADLINE} s"
    expected = {p: plan(p, PER_PRODUCER, TYPES, seed) for p in range(PRODUCERS)}
    figures = audit(expected, [results[i] for i in range(len(pipes))])
    figures["seconds"] = round(elapsed, 2)
    figures["messages_per_second"] = round(total / elapsed)
    return figures


VARIANTS = {
    "any_type_blocking": ([0, 0, 0, 0], [["block"]] * 4),
    "typed_and_negative": ([1, 2, -3, -5], [["block"]] * 4),
    "mixed_calls": (
        [0, -5, 3, 0],
        [["block", "nowait", "timeout"], ["timeout"], ["nowait", "block"], ["timeout", "block"]],
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_exactly_once_under_load(queue: SysVMQ, variant: str, figures: Dict[str, object]) -> None:
    selectors, modes = VARIANTS[variant]
    result = run_load(queue, selectors, modes, seed=zlib.crc32(variant.encode()) & 0xFFFF)
    figures.update(result)
    assert (result["lost"], result["duplicates"], result["wrong_type"], result["out_of_order"]) == (0, 0, 0, 0), result
    assert result["received"] == result["sent"] == PRODUCERS * PER_PRODUCER, result
    leftovers = (
        [m for m in queue.receive_many(1_000, block=False) if check(m)[0] != WAKE] if queue.stats().count else []
    )
    assert not leftovers, f"{len(leftovers)} data messages left queued"
