"""Review of 826dca9 (asyncio's receive tries through SysVMQ._receive_now): reproducers that fail.

1. A blocking ``await q.receive()`` raises QueueEmpty: _receive_now's first try
   fails with an error other than ENOMSG (E2BIG: a message longer than the
   handle's buffer), and its second try, ``SysVMQ.receive(self, block=False)``,
   finds the queue empty because another consumer took the message between
   the two crossings. A blocking receive must never raise QueueEmpty (before
   826dca9 the one try raised MessageTooLarge).
"""

import asyncio
import collections
import contextlib
import errno
import os
import signal
import sys
import time
from typing import Any, Iterator, List

import pytest
from support import register, remove

import sysvmq
import sysvmq._queue
import sysvmq.asyncio

AsyncQ = sysvmq.asyncio.SysVMQ

pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture:DeprecationWarning')


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> Any:
    if request.param == "uvloop":
        if sys.implementation.name != "cpython":
            pytest.skip("uvloop is built for CPython only")
        uvloop = pytest.importorskip("uvloop")
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture
def aq() -> Iterator[AsyncQ]:
    q = register(AsyncQ.private())
    yield q
    remove(q)


class Stop(Exception):
    """What the stand-in for a signal handler raises."""


# -- 1. QueueEmpty out of a blocking receive ----------------------------------------------


async def test_a_blocking_receive_never_raises_queue_empty_when_another_consumer_takes_the_long_message(
    aq: AsyncQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic: another consumer (a big buffer) takes the too-long message right after
    # the small handle's first try saw it (E2BIG), as another process may at any time.
    small = AsyncQ.attach(aq.id, buffer_size=4)
    other = sysvmq.SysVMQ.attach(aq.id)
    sysvmq.SysVMQ.send(other, b"too long for 4")
    real = sysvmq._queue._c_try_rx
    raced: List[bytes] = []

    def racing(c: Any) -> int:
        n: int = real(c)
        if n == -1 and c.err == errno.E2BIG and not raced:
            raced.append(b"")
            raced[0] = sysvmq.SysVMQ.receive(other, block=False)  # the other consumer's turn
        return n

    monkeypatch.setattr(sysvmq._queue, "_c_try_rx", racing)
    asyncio.get_running_loop().call_later(0.2, sysvmq.SysVMQ.send, other, b"ok")
    try:
        got = await asyncio.wait_for(small.receive(), 10)
    except sysvmq.MessageTooLarge:
        pass  # what it did before 826dca9: the message it found was too long
    else:
        assert got == b"ok"  # or it waits, as a blocking receive does, for the next one
    assert raced == [b"too long for 4"]


async def test_a_blocking_receive_never_raises_queue_empty_racing_another_process(aq: AsyncQ) -> None:
    # The same, for real: a child process sends a 32-byte message and takes it back, over and
    # over; the parent's blocking receive through a 4-byte handle may raise MessageTooLarge
    # (it saw the message) or be cancelled by wait_for (it saw none), never QueueEmpty.
    pid = os.fork()
    if pid == 0:
        try:
            big = sysvmq.SysVMQ.attach(aq.id)
            end = time.monotonic() + 4
            while time.monotonic() < end:
                sysvmq.SysVMQ.send(big, b"x" * 32)
                with contextlib.suppress(sysvmq.QueueEmpty):
                    sysvmq.SysVMQ.receive(big, block=False)
        finally:
            os._exit(0)
    small = AsyncQ.attach(aq.id, buffer_size=4)
    outcomes: collections.Counter = collections.Counter()
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end and not outcomes["QueueEmpty"]:
            try:
                await asyncio.wait_for(small.receive(), 0.01)
                outcomes["returned"] += 1
            except (sysvmq.MessageTooLarge, asyncio.TimeoutError, sysvmq.QueueEmpty) as exc:
                outcomes[type(exc).__name__] += 1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert outcomes["QueueEmpty"] == 0, dict(outcomes)
