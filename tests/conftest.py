"""The queue fixtures: every queue a test makes is removed, and the suite checks by id that none survive.

The suite touches only queues it can prove are its own: those whose ids it got
back when it created them (``support.CREATED``). Other programs on the host may
use queues while it runs; their queues are never compared, counted or removed.
"""

import os
import random
from typing import Callable, Iterator, List

import pytest
from support import CREATED, exists, register, remove, start_reaper, stop_reaper

import sysvmq
from sysvmq import SysVMQ


@pytest.fixture(scope="session", autouse=True)
def no_queue_survives() -> Iterator[None]:
    start_reaper()
    yield
    # For CI, which checks by id after every run (SYSVMQ_TEST_QUEUES names a file to append them to).
    record = os.environ.get("SYSVMQ_TEST_QUEUES")
    if record:
        with open(record, "a") as f:
            f.writelines(f"{msqid}\n" for msqid in sorted(CREATED))
    survivors = sorted(i for i in CREATED if exists(i))
    for msqid in survivors:
        remove(SysVMQ.attach(msqid))
    stop_reaper()
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
    """A key no queue has now, for the test alone; the queue the test made with it is removed at teardown.

    Only a queue the test registered (by the id it created) is removed: if
    another program took the key meanwhile, its queue is left alone.
    """
    taken = {st.key for st in sysvmq.queues()}
    key = random.choice([k for k in random.sample(range(0x5E000000, 0x5EFFFFFF), 64) if k not in taken])
    yield key
    try:
        q = SysVMQ.open(key)
    except sysvmq.QueueNotFound:
        return
    if q.id in CREATED:
        remove(q)
