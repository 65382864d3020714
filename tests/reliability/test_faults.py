"""Faults: an endpoint killed mid-stream, the queue removed under load, signals, timeouts."""

import contextlib
import multiprocessing
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List

from harness import check, make
from support import wait_blocked

import sysvmq
from sysvmq import SysVMQ

STREAM = 20_000


def _produce_all(q: SysVMQ, count: int, max_payload: int) -> None:
    rng = random.Random(3)
    for seq in range(count):
        q.send(make(1, seq, rng, max_payload))


def _consume_logging(q: SysVMQ, log: str) -> None:
    # Logs each sequence number as soon as it holds the message: a SIGKILL can
    # lose at most the one between msgrcv and this write.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    while True:
        _, seq = check(q.receive())
        os.write(fd, b"%d\n" % seq)


def _wait_for_lines(path: pathlib.Path, lines: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return
        time.sleep(0.005)
    raise AssertionError(f"{path} never reached {lines} lines")


def test_consumer_killed_mid_stream(queue: SysVMQ, tmp_path: pathlib.Path, figures: Dict[str, object]) -> None:
    ctx: Any = multiprocessing.get_context("fork")
    log = tmp_path / "consumer.log"
    producer = ctx.Process(target=_produce_all, args=(queue, STREAM, 512))
    consumer = ctx.Process(target=_consume_logging, args=(queue, str(log)))
    producer.start()
    consumer.start()
    _wait_for_lines(log, STREAM // 4)
    os.kill(consumer.pid, signal.SIGKILL)
    consumer.join()
    # This process is the new consumer: it takes the rest while the producer goes on.
    rest: List[int] = []
    while producer.is_alive() or queue.stats().count:
        with contextlib.suppress(sysvmq.QueueEmpty):
            rest.append(check(queue.receive(timeout=0.1))[1])
    producer.join()
    assert producer.exitcode == 0
    logged = [int(line) for line in log.read_text().split()]
    both = set(logged) & set(rest)
    missing = set(range(STREAM)) - set(logged) - set(rest)
    figures.update(
        killed_after=len(logged), taken_by_the_new_consumer=len(rest), duplicates=len(both), missing=len(missing)
    )
    assert not both, f"{len(both)} messages delivered twice"
    assert len(missing) <= 1, f"{len(missing)} messages missing; only the one in flight may be"
    assert missing <= {max(logged) + 1}, f"missing {sorted(missing)[:5]}, not the one after {max(logged)}"
    assert rest == sorted(rest), "the new consumer got the rest out of order"


def _produce_forever(q: SysVMQ) -> None:
    rng = random.Random(5)
    seq = 0
    while True:
        q.send(make(1, seq, rng, 4096))
        seq += 1


def test_producer_killed_mid_stream(queue: SysVMQ, figures: Dict[str, object]) -> None:
    ctx: Any = multiprocessing.get_context("fork")
    producer = ctx.Process(target=_produce_forever, args=(queue,))
    producer.start()
    got: List[int] = []
    while len(got) < 5_000:
        got.append(check(queue.receive(timeout=30))[1])
    os.kill(producer.pid, signal.SIGKILL)
    producer.join()
    while True:
        try:
            got.append(check(queue.receive(block=False))[1])  # check() fails on a partial message
        except sysvmq.QueueEmpty:
            break
    figures.update(received=len(got), all_intact=True, gaps=len(set(range(len(got))) - set(got)))
    assert got == list(range(len(got))), "a gap or a reordering after the producer died"


REMOVAL_CHILD = """
import sys, time, sysvmq
q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
try:
    if sys.argv[2] == "send":
        q.send(b"x" * 1000)
    else:
        q.receive(99)
except sysvmq.QueueRemoved:
    print("QueueRemoved", time.monotonic(), flush=True)
"""


def test_removal_under_load(queue: SysVMQ, figures: Dict[str, object]) -> None:
    queue.update(max_size=1000)
    queue.send(b"f" * 1000)
    roles = ["send", "send", "receive", "receive"]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", REMOVAL_CHILD, str(queue.id), role], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for role in roles
    ]
    for child in children:
        wait_blocked(child.pid, child.pid)
    removed = time.monotonic()
    queue.destroy()
    delays = []
    for child in children:
        out, err = child.communicate(timeout=10)
        assert err == b"", err.decode()  # no traceback, nothing else
        name, when = out.split()
        assert name == b"QueueRemoved"
        delays.append(float(when) - removed)
    figures.update(blocked_processes=len(children), slowest_wake_ms=round(max(delays) * 1e3, 2))
    assert max(delays) < 1.0, f"a blocked call took {max(delays):.3f} s to see the removal"


def _stormy(q: SysVMQ, role: str, count: int, out: Any) -> None:
    hits = [0]

    def handler(signum: int, frame: object) -> None:
        hits[0] += 1

    signal.signal(signal.SIGALRM, handler)
    rng = random.Random(os.getpid())
    signal.setitimer(signal.ITIMER_REAL, rng.uniform(5e-5, 5e-4), rng.uniform(5e-5, 5e-4))
    got = []
    for seq in range(count):
        if role == "send":
            q.send(make(1, seq, rng, 64))
        else:
            got.append(check(q.receive())[1])
    signal.setitimer(signal.ITIMER_REAL, 0)
    out.send((hits[0], got))


def test_signal_storm_loses_and_duplicates_nothing(queue: SysVMQ, figures: Dict[str, object]) -> None:
    ctx: Any = multiprocessing.get_context("fork")
    count = 50_000
    (rx_out, rx_in), (tx_out, tx_in) = ctx.Pipe(duplex=False), ctx.Pipe(duplex=False)
    sender = ctx.Process(target=_stormy, args=(queue, "send", count, tx_in))
    receiver = ctx.Process(target=_stormy, args=(queue, "receive", count, rx_in))
    sender.start()
    receiver.start()
    sent_signals, _ = tx_out.recv()
    received_signals, got = rx_out.recv()
    sender.join()
    receiver.join()
    figures.update(messages=count, signals_to_sender=sent_signals, signals_to_receiver=received_signals)
    assert got == list(range(count)), "lost, duplicated or reordered under signals"
    assert sent_signals > 50 and received_signals > 50, "the storm did not happen"
    assert queue.stats().count == 0


SIGINT_CHILD = """
import sys, sysvmq
q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
try:
    if sys.argv[2] == "send":
        q.send(b"never" * 10)
    else:
        q.receive(2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_sigint_in_the_kernel_leaves_the_queue_unchanged(queue: SysVMQ, figures: Dict[str, object]) -> None:
    queue.update(max_size=100)
    queue.send(b"q" * 100, 1)
    before = (queue.stats().count, queue.stats().size, queue.peek())
    outcomes = []
    for role in ("send", "receive"):
        child = subprocess.Popen(
            [sys.executable, "-c", SIGINT_CHILD, str(queue.id), role], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        wait_blocked(child.pid, child.pid)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        assert (out, err) == (b"interrupted\n", b""), err.decode()
        outcomes.append(role)
        assert (queue.stats().count, queue.stats().size, queue.peek()) == before
    figures.update(interrupted=" and ".join(outcomes), queue_unchanged=True)


def _slow_producer(q: SysVMQ, count: int) -> None:
    rng = random.Random(11)
    for seq in range(count):
        if seq % 500 == 0:
            time.sleep(rng.uniform(0.02, 0.05))  # long enough for several receive timeouts
        q.send(make(1, seq, rng, 32))


def test_timeouts_never_drop_a_message(queue: SysVMQ, figures: Dict[str, object]) -> None:
    count = 10_000
    ctx: Any = multiprocessing.get_context("fork")
    producer = ctx.Process(target=_slow_producer, args=(queue, count))
    producer.start()
    got: List[int] = []
    timeouts = 0
    deadline = time.monotonic() + 120
    while len(got) < count and time.monotonic() < deadline:
        try:
            got.append(check(queue.receive(timeout=0.01))[1])
        except sysvmq.QueueEmpty:
            timeouts += 1
    producer.join(30)
    figures.update(messages=count, timeouts_hit=timeouts)
    assert got == list(range(count)), f"{count - len(got)} lost or reordered around {timeouts} timeouts"
    assert timeouts > 0, "the receiver never timed out: the test proved nothing"
