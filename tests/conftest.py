"""The queue fixtures: every queue a test makes is removed, and the suite checks by id that none survive."""

import contextlib
import os
import random
import subprocess
import sys
import textwrap
import time
from typing import Callable, Iterator, List, Optional, Set

import pytest

import sysvmq
from sysvmq import SysVMQ

# Every queue id the suite has made, in this process or reported by a child.
CREATED: Set[int] = set()


def register(q: SysVMQ) -> SysVMQ:
    CREATED.add(q.id)
    return q


def exists(msqid: int) -> bool:
    try:
        SysVMQ.attach(msqid).stats()
    except (sysvmq.QueueNotFound, sysvmq.QueueRemoved):
        return False
    return True


def remove(q: SysVMQ) -> None:
    with contextlib.suppress(sysvmq.QueueRemoved):
        q.destroy()


@pytest.fixture(scope="session", autouse=True)
def no_queue_survives() -> Iterator[None]:
    yield
    survivors = sorted(i for i in CREATED if exists(i))
    for msqid in survivors:
        remove(SysVMQ.attach(msqid))
    assert not survivors, f"queues left behind by the suite: {survivors}"


@pytest.fixture
def make_queue() -> Iterator[Callable[..., SysVMQ]]:
    """A factory of private queues (keyword arguments as SysVMQ.private), all removed at teardown."""
    made: List[SysVMQ] = []

    def make(**kwargs: object) -> SysVMQ:
        q = register(SysVMQ.private(**kwargs))  # type: ignore[arg-type]
        made.append(q)
        return q

    yield make
    for q in made:
        remove(q)


@pytest.fixture
def queue(make_queue: Callable[..., SysVMQ]) -> SysVMQ:
    return make_queue()


@pytest.fixture
def free_key() -> Iterator[int]:
    """A key no queue has; whatever queue a test makes with it is removed at teardown."""
    taken = {st.key for st in sysvmq.queues()}
    key = random.choice([k for k in random.sample(range(0x5E000000, 0x5EFFFFFF), 64) if k not in taken])
    yield key
    try:
        q = SysVMQ.open(key)
    except sysvmq.QueueNotFound:
        return
    register(q)
    remove(q)


def fill(q: SysVMQ, size: int = 1024) -> int:
    """Fill the queue with messages of ``size`` bytes until it is full; returns how many."""
    n = 0
    while True:
        try:
            q.send(b"f" * size, block=False)
        except sysvmq.QueueFull:
            return n
        n += 1


def run_python(code: str, *args: str, timeout: float = 60, check: bool = True) -> "subprocess.CompletedProcess[str]":
    """Run a snippet in a new interpreter (the same one as the tests) and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def wait_blocked(tid: int, pid: Optional[int] = None, timeout: float = 10.0) -> None:
    """Wait until a thread sleeps in msgrcv/msgsnd, as /proc/PID/task/TID/wchan shows."""
    path = f"/proc/{pid or os.getpid()}/task/{tid}/wchan"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if "msg" in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise AssertionError(f"thread {tid} never blocked in msgrcv/msgsnd ({path})")
