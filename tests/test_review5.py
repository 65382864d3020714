"""Review of 826dca9 (asyncio's receive tries through SysVMQ._receive_now): reproducers that fail.

1. A blocking ``await q.receive()`` raises QueueEmpty: _receive_now's first try
   fails with an error other than ENOMSG (E2BIG: a message longer than the
   handle's buffer), and its second try, ``SysVMQ.receive(self, block=False)``,
   finds the queue empty because another consumer took the message between
   the two crossings. A blocking receive must never raise QueueEmpty (before
   826dca9 the one try raised MessageTooLarge).

2. A handler that raises as ``calls.append(call)`` returns on _receive_now's
   failure path (ENOMSG, E2BIG, ...) puts the call state back in the pool a
   second time (``self._pool.give_back(call)`` in the except clause, while
   ``mtype is None``): the pool then holds one state twice, two threads
   receiving on the handle share one buffer, and one message is lost while
   another is returned twice.
"""

import asyncio
import collections
import contextlib
import errno
import os
import signal
import sys
import threading
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


# -- 2. One call state twice in the pool ---------------------------------------------------


def _shared_states(q: sysvmq.SysVMQ) -> int:
    ids = [id(call) for call in q._calls]
    return len(ids) - len(set(ids))


def _receive_into(q: sysvmq.SysVMQ, got: List[bytes]) -> None:
    got.append(sysvmq.SysVMQ.receive(q))


def _two_threads_receive(q: sysvmq.SysVMQ, rounds: int) -> List[Any]:
    """Two threads block in the sync receive on q; two messages come: each must get one."""
    bad = []
    for r in range(rounds):
        got: List[bytes] = []
        threads = [threading.Thread(target=_receive_into, args=(q, got), daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.005)
        sent = [b"a%05d" % r, b"b%05d" % r]
        sysvmq.SysVMQ.send_many(q, sent)
        for t in threads:
            t.join(2)
        if sorted(got) != sorted(sent):
            bad.append((sent, got))
            if any(t.is_alive() for t in threads):
                break  # a message taken by a thread that never returns it: the rest would hang
    return bad


async def test_a_handler_raising_as_the_first_try_puts_its_state_back_returns_it_once(aq: AsyncQ) -> None:
    # A handler that raises as deque.append returns (CPython 3.11 runs handlers there; PyPy
    # anywhere): the except clause gives the state back again. Emulated by the pool's append.
    pool = aq._pool
    raising = type("RaisingOnce", (type(pool.calls),), {"armed": False})

    def append(self: Any, call: Any) -> None:
        super(raising, self).append(call)
        if self.armed:
            self.armed = False
            raise Stop

    raising.append = append
    pool.calls = aq._calls = raising(pool.calls)
    aq._calls.armed = True
    with pytest.raises(Stop) as info:
        await aq.receive()  # nothing queued: _receive_now's ENOMSG path
    assert getattr(info.value, "received", []) == []  # none: raised while another was dressed (README)
    shared = _shared_states(aq)  # one call state in the pool twice: two threads share its buffer
    bad = _two_threads_receive(aq, 50)  # ([sent], [got]) rounds: a message lost, another twice
    assert (shared, bad) == (0, [])


async def test_a_sigalrm_storm_on_the_first_try_never_puts_a_state_in_the_pool_twice(aq: AsyncQ) -> None:
    # The same with real signals: SIGALRM every 100 us, a handler that raises, receives
    # through a 4-byte handle of a message too long for it (_receive_now's E2BIG path).
    small = AsyncQ.attach(aq.id, buffer_size=4)
    await aq.send(b"too long for 4")
    armed = False

    def handler(sig: int, frame: Any) -> None:
        if armed:
            raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
    try:
        end = time.monotonic() + 4
        while time.monotonic() < end and not _shared_states(small):
            try:
                armed = True
                await small.receive()
            except (Stop, sysvmq.MessageTooLarge):
                pass
            finally:
                armed = False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert await aq.receive(block=False) == b"too long for 4"
    assert _shared_states(small) == 0, "one call state is in the pool twice"
