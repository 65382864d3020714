"""sysvmq.asyncio: awaitable calls that never block the loop, cancellation that loses nothing, threads that go."""

import array
import asyncio
import collections
import contextlib
import dis
import enum
import errno
import functools
import gc
import inspect
import itertools
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, List

import pytest
from support import Halt, opcode_tracing, raise_at, register, remove, run_python, wait_for

import sysvmq
import sysvmq.asyncio
from sysvmq import Message

AsyncQ = sysvmq.asyncio.SysVMQ

# pytest-asyncio 1.3 and later would have loop factories, which 1.2 (the last for Python 3.9) lacks.
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture:DeprecationWarning')


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> Any:
    """Every test on the default loop and on uvloop."""
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


def _timers() -> int:
    with open("/proc/self/timers") as f:
        return sum(line.startswith("ID:") for line in f)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _sysvmq_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sysvmq ")]


async def _later(delay: float, call: Callable[[], object]) -> None:
    await asyncio.sleep(delay)
    call()


def _sync(q: AsyncQ) -> sysvmq.SysVMQ:
    return sysvmq.SysVMQ.attach(q.id)


# -- the API ---------------------------------------------------------------------------


async def test_the_async_handle_is_the_sync_one_with_calls_to_await(aq: AsyncQ) -> None:
    assert isinstance(aq, sysvmq.SysVMQ)
    for name in ("send", "receive", "receive_message", "receive_into", "send_many", "receive_many"):
        assert inspect.iscoroutinefunction(getattr(AsyncQ, name)), name
    assert inspect.iscoroutinefunction(AsyncQ.receive_many_messages)
    for name in ("stats", "update", "destroy", "peek"):
        assert getattr(AsyncQ, name) is getattr(sysvmq.SysVMQ, name)
    await aq.send(b"hello", 2)
    assert aq.peek() == Message(b"hello", 2)
    assert aq.stats().count == 1
    assert await aq.receive_message() == Message(b"hello", 2)


async def test_the_constructors_make_async_handles(free_key: int) -> None:
    created = register(AsyncQ.create(free_key, exclusive=True, mode=0o640))
    assert type(created) is AsyncQ
    assert type(AsyncQ.open(free_key)) is AsyncQ
    assert type(AsyncQ.attach(created.id)) is AsyncQ
    assert type(AsyncQ(free_key)) is AsyncQ
    assert created.stats().mode == 0o640


async def test_every_call_round_trips(aq: AsyncQ) -> None:
    await aq.send(b"one")
    assert await aq.receive() == b"one"
    await aq.send("two", 5)
    buf = bytearray(16)
    assert await aq.receive_into(buf, 5) == (3, 5) and buf[:3] == b"two"
    assert await aq.send_many([b"a", b"b", b"c"], 3) == 3
    assert await aq.receive_many(2) == [b"a", b"b"]
    assert await aq.receive_many_messages(5) == [Message(b"c", 3)]


async def test_send_many_from_one_buffer_waits_for_room_for_the_rest(aq: AsyncQ) -> None:
    aq.update(max_size=2000)
    buffer = b"a" * 1000 + b"b" * 1000 + b"c" * 1000
    sending = asyncio.ensure_future(aq.send_many(buffer, lengths=[1000, 1000, 1000]))
    await asyncio.sleep(0.02)
    assert not sending.done()  # two fitted; the third waits
    assert await aq.receive() == b"a" * 1000
    assert await sending == 3
    assert await aq.receive_many(5) == [b"b" * 1000, b"c" * 1000]


async def test_sync_and_async_handles_share_a_queue(aq: AsyncQ) -> None:
    sync = _sync(aq)
    sync.send(b"from sync")
    assert await aq.receive() == b"from sync"
    await aq.send(b"from async")
    assert sync.receive(block=False) == b"from async"
    converted = AsyncQ.from_sync(sync)
    assert type(converted) is AsyncQ and converted == aq
    clone = pickle.loads(pickle.dumps(aq))
    assert type(clone) is AsyncQ and clone.id == aq.id


async def test_async_for_yields_messages_of_any_type(aq: AsyncQ) -> None:
    await aq.send_many([b"x"], 1)
    await aq.send(b"y", 7)
    got: List[Message] = []
    async for message in aq:
        got.append(message)
        if len(got) == 2:
            break
    assert got == [Message(b"x", 1), Message(b"y", 7)]


async def test_messages_stream_typed_and_batched(aq: AsyncQ) -> None:
    for t in (1, 2, 1, 2, 2):
        await aq.send(f"t{t}", t)
    typed: AsyncIterator[Message] = aq.messages(2)
    assert [await typed.__anext__() for _ in range(3)] == [Message(b"t2", 2)] * 3
    batched = aq.messages(1, batch=5)
    assert await batched.__anext__() == [Message(b"t1", 1), Message(b"t1", 1)]


async def test_nonblocking_and_timeouts_behave_as_the_sync_calls(aq: AsyncQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty):
        await aq.receive(block=False)
    with pytest.raises(ValueError, match="cannot be combined"):
        await aq.receive(block=False, timeout=1)
    began = time.monotonic()
    with pytest.raises(sysvmq.QueueEmpty, match=r"within 0\.05 s") as info:
        await aq.receive_message(timeout=0.05)
    assert time.monotonic() - began >= 0.05
    assert info.value.received == []
    aq.update(max_size=100)
    await aq.send(b"x" * 100)
    with pytest.raises(sysvmq.QueueFull):
        await aq.send(b"y", block=False)
    with pytest.raises(sysvmq.QueueFull) as full:
        await aq.send_many([b"a" * 50, b"b" * 50], timeout=0.05)
    assert full.value.count == 0
    with pytest.raises(sysvmq.MessageTooLarge):
        await aq.send(b"z" * 101)


async def test_a_receive_raises_as_the_sync_one_and_leaves_what_it_cannot_take_queued(aq: AsyncQ) -> None:
    # A receive of any message tries once, cheaply (SysVMQ._receive_now), before it would wait;
    # an error there is the sync call's, with the sync call's message.
    small = AsyncQ.attach(aq.id, buffer_size=4)
    await aq.send(b"too long for 4")
    with pytest.raises(sysvmq.MessageTooLarge, match="longer than the 4-byte buffer and stays queued"):
        await small.receive()
    assert await aq.receive() == b"too long for 4"
    aq.destroy()
    with pytest.raises(sysvmq.QueueRemoved):
        await aq.receive()


class _Stop(Exception):
    """Raised by a stand-in for a signal handler that raises as a crossing into C returns."""


def _states_in_the_pool_twice(q: AsyncQ) -> int:
    ids = [id(call) for call in q._calls]
    return len(ids) - len(set(ids))


@pytest.mark.parametrize("queued", [b"x", None])
async def test_an_exception_as_the_first_try_returns_says_what_it_took(
    aq: AsyncQ, monkeypatch: pytest.MonkeyPatch, queued: Any
) -> None:
    # Python runs a signal's handler as a call into C returns. If the kernel had handed the
    # message over, the exception out of the receive carries it; if not, it took nothing.
    # Either way the call state goes back to the pool once: twice, two threads would share it.
    real = sysvmq._queue._c_try_rx

    def raising(c: Any) -> int:
        real(c)
        raise _Stop

    if queued is not None:
        await aq.send(queued, 3)
    monkeypatch.setattr(sysvmq._queue, "_c_try_rx", raising)
    with pytest.raises(_Stop) as info:
        await aq.receive()
    monkeypatch.undo()
    assert info.value.received == ([] if queued is None else [Message(b"x", 3)])  # type: ignore[attr-defined]
    assert aq.stats().count == 0
    assert _states_in_the_pool_twice(aq) == 0


async def test_a_handler_raising_as_a_try_that_took_nothing_returns_puts_its_state_back_once(aq: AsyncQ) -> None:
    # The handler runs as the state's return to the pool returns (deque.append: CPython 3.11
    # runs handlers there, PyPy at any bytecode): emulated by the pool's own append. Found
    # in review: the state went back a second time, and two threads then received into one
    # buffer, one message lost and another returned twice.
    pool = aq._pool
    raising = type("RaisingOnce", (type(pool.calls),), {"armed": False})

    def append(self: Any, call: Any) -> None:
        super(raising, self).append(call)
        if self.armed:
            self.armed = False
            raise _Stop

    raising.append = append  # type: ignore[attr-defined]
    pool.calls = aq._calls = raising(pool.calls)
    aq._calls.armed = True  # type: ignore[attr-defined]
    with pytest.raises(_Stop) as info:
        await aq.receive()  # nothing queued
    assert info.value.received == []  # type: ignore[attr-defined]
    assert _states_in_the_pool_twice(aq) == 0


async def test_a_blocking_receive_never_raises_queue_empty_when_another_consumer_takes_the_long_message(
    aq: AsyncQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in review: the first try saw a message too long for the buffer (E2BIG), another
    # consumer took it, and a second try raised QueueEmpty out of a blocking receive. The
    # one try's error is what the receive raises, as the sync receive does.
    small = AsyncQ.attach(aq.id, buffer_size=4)
    other = sysvmq.SysVMQ.attach(aq.id)
    other.send(b"too long for 4")
    real = sysvmq._queue._c_try_rx
    raced: List[bytes] = []

    def racing(c: Any) -> int:
        n: int = real(c)
        if n == -1 and c.err == errno.E2BIG and not raced:
            raced.append(other.receive(block=False))  # the other consumer's turn
        return n

    monkeypatch.setattr(sysvmq._queue, "_c_try_rx", racing)
    with pytest.raises(sysvmq.MessageTooLarge, match="longer than the 4-byte buffer"):
        await small.receive()
    assert raced == [b"too long for 4"]


async def test_the_async_handle_names_its_class_and_refuses_ipc_nowait_with_a_timeout(aq: AsyncQ) -> None:
    assert repr(aq) == f"<sysvmq.asyncio.SysVMQ id={aq.id} key=0x00000000 buffer_size={aq.buffer_size}>"
    with pytest.raises(ValueError, match="timeout cannot be combined with block=False or IPC_NOWAIT"):
        await aq.receive(flags=sysvmq.IPC_NOWAIT, timeout=1)
    with pytest.raises(ValueError, match="timeout cannot be combined with block=False or IPC_NOWAIT"):
        await aq.receive_message(flags=sysvmq.IPC_NOWAIT, timeout=1)
    with pytest.raises(ValueError, match="timeout cannot be combined with block=False or IPC_NOWAIT"):
        await aq.send(b"x", flags=sysvmq.IPC_NOWAIT, timeout=1)
    assert aq.stats().count == 0


class _Flags(enum.IntFlag):
    NOWAIT = sysvmq.IPC_NOWAIT


async def test_ipc_nowait_as_an_intflag_never_waits(aq: AsyncQ) -> None:
    # Programs often name their flags in an IntFlag; the sync calls take it, so must these.
    for call in (aq.receive, aq.receive_message, lambda **kw: aq.receive_into(bytearray(8), **kw)):
        with pytest.raises(sysvmq.QueueEmpty):
            await asyncio.wait_for(call(flags=_Flags.NOWAIT), 5)
    aq.update(max_size=1)
    await aq.send(b"x")
    with pytest.raises(sysvmq.QueueFull):
        await asyncio.wait_for(aq.send(b"y", flags=_Flags.NOWAIT), 5)
    assert _sync(aq).receive_many(5, block=False) == [b"x"]


@pytest.mark.parametrize("lengths", [iter([3, 3]), (n for n in (3, 3)), {3: 0, 0: 3}])
async def test_send_many_refuses_lengths_that_are_not_a_sequence_before_queueing_any(aq: AsyncQ, lengths: Any) -> None:
    with pytest.raises(TypeError, match=r"lengths must be a sequence of ints \(list, tuple, array\), not "):
        await aq.send_many(b"abcdef", lengths=lengths)
    assert aq.stats().count == 0
    assert await aq.send_many(b"abcdef", lengths=array.array("I", [2, 4])) == 2  # an array is a sequence
    assert _sync(aq).receive_many(5, block=False) == [b"ab", b"cdef"]


@pytest.mark.parametrize("form", ["deque of bytes", "buffer, lengths a deque"])
async def test_send_many_of_a_sequence_that_does_not_slice_waits_for_room_and_sends_the_rest(
    aq: AsyncQ, form: str
) -> None:
    # A deque is a Sequence, which the sync call takes, but it does not slice: what is left after the
    # first try must be read by position, not by messages[done:].
    texts = [b"%02d--------" % i for i in range(6)]  # 10 bytes each: 3 fit in 30
    aq.update(max_size=30)
    if form == "deque of bytes":
        sending = asyncio.ensure_future(aq.send_many(collections.deque(texts)))
    else:
        sending = asyncio.ensure_future(aq.send_many(bytearray(b"".join(texts)), lengths=collections.deque([10] * 6)))
    while aq.stats().count < 3:  # the first try has queued what fits
        await asyncio.sleep(0)
    assert not sending.done()
    taken = _sync(aq).receive_many(3, block=False)
    assert await asyncio.wait_for(sending, 10) == 6
    assert taken + _sync(aq).receive_many(3, block=False) == texts


# -- waiting --------------------------------------------------------------------------


async def test_a_waiting_receive_never_blocks_the_loop(aq: AsyncQ) -> None:
    ticks = 0
    loop_tid = threading.get_native_id()
    in_kernel = []

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1
            with open(f"/proc/self/task/{loop_tid}/wchan") as f:
                in_kernel.append("msg" in f.read())

    beat = asyncio.ensure_future(heartbeat())
    sender = asyncio.ensure_future(_later(0.1, lambda: _sync(aq).send(b"late")))
    try:
        assert await aq.receive() == b"late"
    finally:
        beat.cancel()
        await sender
    assert ticks >= 20  # the loop went on running while the receive waited
    assert not any(in_kernel)


async def test_a_waiting_send_never_blocks_the_loop(aq: AsyncQ) -> None:
    aq.update(max_size=100)
    await aq.send(b"f" * 100)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    beat = asyncio.ensure_future(heartbeat())
    drain = asyncio.ensure_future(_later(0.1, lambda: _sync(aq).receive()))
    try:
        await aq.send(b"s" * 100)
    finally:
        beat.cancel()
        await drain
    assert ticks >= 20
    assert _sync(aq).receive(block=False) == b"s" * 100


async def test_receives_waiting_in_turn_each_get_one(aq: AsyncQ) -> None:
    waiting = [asyncio.ensure_future(aq.receive(4)) for _ in range(5)]
    await asyncio.sleep(0.02)
    _sync(aq).send_many([b"%d" % i for i in range(5)], 4)
    got = await asyncio.gather(*waiting)
    assert sorted(got) == [b"%d" % i for i in range(5)]


async def test_many_waiters_share_one_thread_per_queue_and_selector(make_queue: Callable[..., AsyncQ]) -> None:
    queues = [AsyncQ.from_sync(make_queue()) for _ in range(3)]
    waiting = [asyncio.ensure_future(q.receive(t)) for q in queues for t in (1, 2) for _ in range(10)]
    await asyncio.sleep(0.05)
    names = {f"sysvmq watcher {q.id}" for q in queues}
    watchers = [t for t in _sysvmq_threads() if t.name in names]
    assert len(watchers) == 6  # 60 receives waiting, one thread a (queue, type)
    for q in queues:
        _sync(q).send_many([b"x"] * 10, 1)
        _sync(q).send_many([b"y"] * 10, 2)
    assert len(await asyncio.gather(*waiting)) == 60


async def test_an_empty_message_is_handed_to_a_waiting_receive(aq: AsyncQ) -> None:
    waiting = asyncio.ensure_future(aq.receive_message(3))
    await asyncio.sleep(0.02)
    _sync(aq).send(b"", 3)
    assert await waiting == Message(b"", 3)


def _watcher_asleep(q: AsyncQ) -> bool:
    """Whether the loop's one watcher thread for q is asleep in msgrcv."""
    tids = [t.native_id for t in _sysvmq_threads() if t.name == f"sysvmq watcher {q.id}"]
    return len(tids) == 1 and tids[0] is not None and _in_msgrcv(os.getpid(), tids[0])


def _loop_told(q: AsyncQ) -> bool:
    """Whether a watcher has written to the running loop's pipe what the loop has yet to read."""
    service = sysvmq.asyncio._Service._all[asyncio.get_running_loop()]
    return bool(select.select([service.wake_r], [], [], 0)[0])


def _watcher_tid(q: AsyncQ) -> int:
    (tid,) = [t.native_id for t in _sysvmq_threads() if t.name == f"sysvmq watcher {q.id}"]
    assert tid is not None
    return tid


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Let the loop run until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s: {what}"
        await asyncio.sleep(0.001)


async def test_a_timeout_counts_from_the_call_not_from_the_last_wake_up(aq: AsyncQ) -> None:
    # A competing consumer takes each message that wakes the waiting receive, before the
    # receive's try: the receive must still end when its own timeout is up.
    sync = _sync(aq)
    began = time.monotonic()
    waiting = asyncio.ensure_future(aq.receive(timeout=0.3))
    await _until(lambda: _watcher_asleep(aq) or waiting.done(), "the watcher asleep")
    tid = _watcher_tid(aq)
    wakes = 0
    while not waiting.done() and time.monotonic() - began < 3:
        sync.send(b"m")
        # The loop is held here, so the watcher's word cannot reach the receive before the message is gone.
        wait_for(lambda: not _in_msgrcv(os.getpid(), tid), what="the watcher woken by the message")
        assert sync.receive(block=False) == b"m"
        wakes += 1
        await _until(lambda: _in_msgrcv(os.getpid(), tid) or waiting.done(), "the watcher asleep again")
    assert waiting.done(), f"receive(timeout=0.3) still waiting after {time.monotonic() - began:.2f} s, {wakes} wakes"
    with pytest.raises(sysvmq.QueueEmpty, match=r"within 0\.3 s"):
        await waiting
    assert 0.3 <= time.monotonic() - began < 2
    assert wakes >= 2


async def test_receive_many_keeps_the_empty_message_a_watcher_took_when_the_next_one_is_too_large(
    aq: AsyncQ,
) -> None:
    small = AsyncQ.attach(aq.id, buffer_size=10)
    waiting = asyncio.ensure_future(small.receive_many(5))
    await _until(lambda: _watcher_asleep(aq), "the watcher asleep")
    sync = _sync(aq)
    sync.send(b"", 1)  # fits the watcher's 0 bytes: it takes it for the waiting receive
    sync.send(b"x" * 20, 1)  # longer than the receive's buffer_size
    assert await waiting == [b""]  # an error after the first ends the batch, which is returned
    assert sync.receive_many(5, block=False) == [b"x" * 20]


NO_TIMER = """
import asyncio, json, resource, signal, sys, time
import sysvmq, sysvmq.asyncio

if sys.argv[2] == "no timer":  # timer_create fails: no pending signal may be queued for this user
    resource.setrlimit(getattr(resource, "RLIMIT_SIGPENDING", 11), (0, 0))  # PyPy lacks the name (11: Linux)
q = sysvmq.asyncio.SysVMQ.attach(int(sys.argv[1]))

async def main():
    if sys.argv[2] == "signal taken":
        try:
            await q.receive(timeout=0.01)  # a watcher waits with the timer: sysvmq's handler is on the signal
        except sysvmq.QueueEmpty:
            pass
        signal.signal(sysvmq.timer_signal, lambda signum, frame: None)  # then the application takes it
    cpu, began = time.process_time(), time.monotonic()
    try:
        await asyncio.wait_for(q.receive(timeout=0.3), 10)
        outcome = "received"
    except sysvmq.QueueEmpty:
        outcome = "timed out"
    took, cpu = time.monotonic() - began, time.process_time() - cpu
    asyncio.get_running_loop().call_later(0.05, lambda: sysvmq.SysVMQ.attach(q.id).send(b"late"))
    late = await asyncio.wait_for(q.receive(), 10)
    return outcome, took, cpu, late.decode()

print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.parametrize("how", ["no timer", "signal taken"])
def test_where_a_watcher_can_have_no_timer_receives_poll_and_time_out(aq: AsyncQ, how: str) -> None:
    # sysvmq_again_until says -2 (timer_create failed in the watcher's thread) or -3 (the
    # application gave the timer signal its own handler): the receive must poll, not spin.
    outcome, took, cpu, late = json.loads(run_python(NO_TIMER, str(aq.id), how).stdout)
    assert outcome == "timed out"
    assert 0.3 <= took < 2
    assert cpu < took / 2, f"{cpu:.2f} s of CPU in {took:.2f} s: it spun"
    assert late == "late"


@pytest.mark.parametrize("runner", ["asyncio", "uvloop"])
def test_an_empty_message_taken_as_the_loop_ends_goes_back_to_the_queue(
    make_queue: Callable[..., AsyncQ], runner: str
) -> None:
    sync = make_queue()
    q = AsyncQ.from_sync(sync)

    async def main() -> None:
        waiting = asyncio.ensure_future(q.receive())
        await _until(lambda: _watcher_asleep(q), "the watcher asleep")
        tid = _watcher_tid(q)
        sync.send(b"", 7)  # fits the watcher's 0 bytes: it takes it
        wait_for(lambda: not _in_msgrcv(os.getpid(), tid), what="the watcher woken")
        waiting.cancel()  # before the loop hears of it

    if runner == "uvloop":
        if sys.implementation.name != "cpython":
            pytest.skip("uvloop is built for CPython only")
        pytest.importorskip("uvloop").run(main())
    else:
        asyncio.run(main())
    wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the watcher gone")
    assert sync.receive_many_messages(10, block=False) == [Message(b"", 7)]


async def test_an_empty_message_held_for_a_cancelled_receive_comes_before_later_ones(aq: AsyncQ) -> None:
    sync = _sync(aq)
    first = asyncio.ensure_future(aq.receive_message())
    await _until(lambda: _watcher_asleep(aq), "the watcher asleep")
    tid = _watcher_tid(aq)
    sync.send(b"", 1)  # fits the watcher's 0 bytes: it takes it for the first receive
    wait_for(lambda: not _in_msgrcv(os.getpid(), tid), what="the watcher woken")
    # Taken by the kernel, and the loop told (it has yet to collect it): the one window where a
    # later message could come first, as if the two had been sent together.
    wait_for(lambda: _loop_told(aq), what="the loop told")
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    sync.send(b"second", 1)
    assert await aq.receive_message() == Message(b"", 1)
    assert await aq.receive_message() == Message(b"second", 1)
    assert aq.stats().count == 0


async def test_an_empty_message_held_again_goes_to_the_receive_already_waiting(
    aq: AsyncQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher hands the empty message to the first receive, which is cancelled before it resumes:
    # the message is held again, and the second receive, waiting since before it came, must get it
    # now, not when some later message wakes the watcher.
    first = asyncio.ensure_future(aq.receive(type=2))
    second = asyncio.ensure_future(aq.receive(type=2))
    await _until(lambda: _watcher_asleep(aq), "the watcher asleep")
    collect = sysvmq.asyncio._Watcher.collect

    def collect_then_cancel(watcher: Any) -> None:
        collect(watcher)
        first.cancel()  # before the first receive's task runs again

    monkeypatch.setattr(sysvmq.asyncio._Watcher, "collect", collect_then_cancel)
    _sync(aq).send(b"", 2)
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled()
    assert await asyncio.wait_for(second, 5) == b""
    assert aq.stats().count == 0


# -- cancellation --------------------------------------------------------------------

CANCELLERS: List[str] = ["cancel", "wait_for"] + (["timeout", "taskgroup"] if sys.version_info >= (3, 11) else [])


async def _cancel_while_waiting(how: str, call: Awaitable[Any]) -> BaseException:
    """Let call wait, then end it the way ``how`` says; what it raised."""
    if how == "wait_for":
        with pytest.raises(asyncio.TimeoutError) as info:
            await asyncio.wait_for(call, 0.05)
        return info.value
    if how == "timeout":
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.05):  # type: ignore[attr-defined]
                await call
        return info.value
    if how == "taskgroup":

        async def fail() -> None:
            await asyncio.sleep(0.05)
            raise KeyError("a sibling failed")

        with pytest.raises(BaseException) as info:  # an ExceptionGroup holding the KeyError
            async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
                tg.create_task(call)
                tg.create_task(fail())
        return info.value
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await task
    return cancelled.value


@pytest.mark.parametrize("how", CANCELLERS)
@pytest.mark.parametrize("call", ["receive", "receive_message", "receive_into", "receive_many"])
async def test_a_receive_cancelled_while_it_waits_has_taken_nothing(aq: AsyncQ, how: str, call: str) -> None:
    waiting = {
        "receive": lambda: aq.receive(),
        "receive_message": lambda: aq.receive_message(),
        "receive_into": lambda: aq.receive_into(bytearray(8)),
        "receive_many": lambda: aq.receive_many(5),
    }[call]()
    await _cancel_while_waiting(how, waiting)
    _sync(aq).send(b"after")
    assert await aq.receive(timeout=5) == b"after"  # not taken by the cancelled one
    assert aq.stats().count == 0


@pytest.mark.parametrize("how", CANCELLERS)
async def test_a_send_cancelled_while_it_waits_for_room_says_what_it_queued(aq: AsyncQ, how: str) -> None:
    aq.update(max_size=100)
    await aq.send(b"f" * 100)
    counts: List[object] = []

    async def sending() -> None:
        # Read where the CancelledError is raised: before Python 3.11, asyncio hands
        # the task's awaiter a new CancelledError, without what this one carries.
        try:
            await aq.send_many([b"a" * 60, b"b" * 60])
        except asyncio.CancelledError as exc:
            counts.append(getattr(exc, "count", None))
            raise

    await _cancel_while_waiting(how, sending())
    assert counts == [0]
    assert [m.data for m in _sync(aq).receive_many_messages(10, block=False)] == [b"f" * 100]


async def test_an_empty_message_taken_for_a_cancelled_receive_goes_to_the_next(aq: AsyncQ) -> None:
    # The only message a waiting receive's thread takes is an empty one (it fits 0 bytes).
    sync = _sync(aq)
    first = asyncio.ensure_future(aq.receive_message(6))
    await asyncio.sleep(0.02)
    sync.send(b"", 6)
    first.cancel()  # as the empty message may be on its way to it
    try:
        got = await first
    except asyncio.CancelledError:
        got = await aq.receive_message(6, timeout=5)  # kept for the next receive, or still queued
    assert got == Message(b"", 6)
    assert aq.stats().count == 0


# -- threads and the end of the loop -----------------------------------------------


def test_loop_shutdown_leaves_no_thread_behind_and_the_queue_unchanged(make_queue: Callable[..., AsyncQ]) -> None:
    sync = make_queue()
    sync.send(b"kept", 9)
    q = AsyncQ.from_sync(sync)
    timers = _timers()

    q.update(max_size=4)  # full: b"kept" is 4 bytes
    fds = _fds()

    async def main() -> None:
        waiting = [asyncio.ensure_future(q.receive(t)) for t in (1, 2, 3)]  # when asyncio.run cancels them
        waiting.append(asyncio.ensure_future(q.send(b"wait")))  # waiting for room, likewise
        for _ in range(500):
            mine = [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")]
            if len(mine) == 4:
                break
            await asyncio.sleep(0.01)
        assert len(mine) == 4  # three watchers, one sender

    asyncio.run(main())
    wait_for(
        lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")],
        what="sysvmq's threads gone after the loop closed",
    )
    wait_for(lambda: _timers() <= timers, what="their timers deleted")
    wait_for(lambda: _fds() <= fds, what="the loop's wake-up pipe closed")
    assert sysvmq.SysVMQ.attach(q.id).receive_many_messages(10, block=False) == [Message(b"kept", 9)]


def test_a_loop_closed_after_its_watcher_retired_while_it_was_stopped_leaves_no_pipe(
    make_queue: Callable[..., AsyncQ],
) -> None:
    # The retiring watcher posts to the stopped loop, which is closed without running again: the
    # next loop to need a watcher forgets the closed loop's service and closes its pipe.
    q = AsyncQ.from_sync(make_queue())
    fds = _fds()

    async def one() -> bytes:
        got = asyncio.ensure_future(q.receive())
        await _until(lambda: _watcher_asleep(q), "the watcher asleep in msgrcv")
        await q.send(b"x")
        return await got

    stopped = asyncio.new_event_loop()
    try:
        assert stopped.run_until_complete(one()) == b"x"
        wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the watcher gone")
    finally:
        stopped.close()
    assert _fds() > fds  # its pipe, still open
    assert asyncio.run(one()) == b"x"
    wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the watcher gone")
    wait_for(lambda: _fds() <= fds, what="both loops' pipes closed")


def test_loops_closed_with_receives_waiting_then_collected_leave_nothing_behind(
    make_queue: Callable[..., AsyncQ],
) -> None:
    # The loop, its pending task and the watcher become one garbage cycle; the task's coroutine,
    # finalized in the collection, still calls on the watch, which must outlive it (the sanitizer
    # build of the suite, .ci/sanitizers, catches a use after free here).
    q = AsyncQ.from_sync(make_queue())
    fds = _fds()
    for i in range(20):
        loop = asyncio.new_event_loop()
        task = loop.create_task(q.receive(type=i + 1))
        loop.run_until_complete(asyncio.sleep(0))  # the task's first step: it found nothing and waits
        assert not task.done()
        loop.close()  # without cancelling it
        del task, loop
    wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the watchers gone")
    gc.collect()
    wait_for(lambda: _fds() <= fds, what="the loops' wake-up pipes closed")
    _sync(q).send(b"after", 20)  # no watcher of a closed loop takes or holds anything now
    assert _sync(q).receive_many_messages(5, block=False) == [Message(b"after", 20)]


class _NoReaders(asyncio.SelectorEventLoop):
    def add_reader(self, fd: Any, callback: Any, *args: Any) -> None:
        raise NotImplementedError


def test_a_loop_that_cannot_watch_a_file_descriptor_polls(make_queue: Callable[..., AsyncQ]) -> None:
    q = AsyncQ.from_sync(make_queue())
    loop = _NoReaders()

    async def main() -> Message:
        got = asyncio.ensure_future(q.receive_message(4))
        await asyncio.sleep(0)  # its first step: it tried, found nothing and chose how to wait
        assert not got.done()
        assert not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")]  # no watcher: it polls
        await q.send(b"polled", 4)
        return await asyncio.wait_for(got, 5)

    try:
        assert loop.run_until_complete(main()) == Message(b"polled", 4)
    finally:
        loop.close()


def test_a_receive_pending_when_its_loop_is_closed_leaves_no_thread_or_pipe_and_loses_nothing(
    make_queue: Callable[..., AsyncQ],
) -> None:
    sync = make_queue()
    q = AsyncQ.from_sync(sync)
    fds = _fds()
    loop = asyncio.new_event_loop()
    pending: List[Any] = []  # the task, kept from the garbage collector while the test looks

    async def main() -> None:
        pending.append(asyncio.ensure_future(q.receive(3)))  # never awaited, never cancelled
        await _until(lambda: _watcher_asleep(q), "the watcher asleep in msgrcv")

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    sync.send(b"", 3)  # fits the watcher's 0 bytes: it takes it, for a loop that will never hear of it
    wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the watcher gone")
    wait_for(lambda: _fds() <= fds, what="the loop's wake-up pipe closed")
    assert sync.receive_many_messages(5, block=False) == [Message(b"", 3)]  # given back
    assert not pending[0].done()


def _woken_by_hand(loop: asyncio.AbstractEventLoop, sync: sysvmq.SysVMQ, text: bytes, mtype: int) -> None:
    """Send a message a waiting receive on ``loop`` (not running) selects; once its watcher has
    told the loop, run the loop's wake-up here, as the loop would: the receive's task is
    scheduled, and does not run."""
    service = sysvmq.asyncio._Service._all[loop]
    sync.send(text, mtype)
    wait_for(lambda: select.select([service.wake_r], [], [], 0)[0], what="the loop told")
    service._woken()


def test_an_empty_message_for_a_woken_receive_whose_task_never_runs_goes_back(
    make_queue: Callable[..., AsyncQ],
) -> None:
    # The loop hears the watcher took an empty message and wakes the receive, then closes before
    # the task runs again. The receive takes the message only when its task runs: so it is still
    # the watcher's, which gives it back (before, the wake-up carried it, and it went with the task).
    sync = make_queue()
    q = AsyncQ.from_sync(sync)
    loop = asyncio.new_event_loop()
    pending: List[Any] = []

    async def main() -> None:
        pending.append(asyncio.ensure_future(q.receive(3)))
        await _until(lambda: _watcher_asleep(q), "the watcher asleep in msgrcv")

    try:
        loop.run_until_complete(main())
        _woken_by_hand(loop, sync, b"", 3)  # the watcher takes it; the receive is woken, its task scheduled...
        assert sync.stats().count == 0
    finally:
        loop.close()  # ...and never run
    wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the watcher gone")
    assert sync.receive_many_messages(5, block=False) == [Message(b"", 3)]  # given back
    assert not pending[0].done()


def _sender_in_msgsnd(q: AsyncQ) -> bool:
    tids = [t.native_id for t in _sysvmq_threads() if t.name == f"sysvmq send {q.id}"]
    return len(tids) == 1 and tids[0] is not None and _in_msgrcv(os.getpid(), tids[0])  # wchan: do_msgsnd


async def test_a_wake_up_a_full_pipe_refused_is_not_lost(aq: AsyncQ) -> None:
    got = asyncio.ensure_future(aq.receive())
    await _until(lambda: _watcher_asleep(aq), "the watcher asleep")
    service = sysvmq.asyncio._Service._all[asyncio.get_running_loop()]
    with contextlib.suppress(BlockingIOError):  # fill the pipe with tokens no watcher has
        while True:
            os.write(service.wake_w, bytes(4096))
    overflows = sysvmq._ffi.lib.sysvmq_watch_overflows()
    tid = _watcher_tid(aq)
    _sync(aq).send(b"through")  # the watcher's token finds the pipe full
    wait_for(lambda: not _in_msgrcv(os.getpid(), tid), what="the watcher woken")
    wait_for(lambda: sysvmq._ffi.lib.sysvmq_watch_overflows() > overflows, what="its token refused")
    assert await asyncio.wait_for(got, 5) == b"through"


def _fail_once(monkeypatch: pytest.MonkeyPatch, prefix: str) -> List[str]:
    """Thread.start raises, as when the system has no thread to give, for the first thread named prefix..."""
    real = threading.Thread.start
    failed: List[str] = []

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith(prefix) and not failed:
            failed.append(thread.name)
            raise RuntimeError("can't start new thread")
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return failed


async def test_a_receive_whose_watcher_thread_cannot_start_polls(aq: AsyncQ, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = _fail_once(monkeypatch, "sysvmq watcher")
    polling = asyncio.ensure_future(aq.receive())
    await _until(lambda: bool(failed), "the watcher thread refused")
    _sync(aq).send(b"polled")
    assert await asyncio.wait_for(polling, 5) == b"polled"
    got = asyncio.ensure_future(aq.receive())  # the next one asks again, and its thread starts
    await _until(lambda: _watcher_asleep(aq), "the watcher asleep")
    _sync(aq).send(b"after")
    assert await asyncio.wait_for(got, 5) == b"after"


async def test_a_send_whose_sender_thread_cannot_start_polls(aq: AsyncQ, monkeypatch: pytest.MonkeyPatch) -> None:
    aq.update(max_size=4)
    await aq.send(b"FULL")
    failed = _fail_once(monkeypatch, "sysvmq send")
    polling = asyncio.ensure_future(aq.send(b"poll"))
    await _until(lambda: bool(failed), "the sender thread refused")
    assert _sync(aq).receive() == b"FULL"
    await asyncio.wait_for(polling, 5)
    waiting = asyncio.ensure_future(aq.send(b"next"))  # a new thread for the line
    await _until(lambda: _sender_in_msgsnd(aq), "the send asleep in msgsnd")
    assert _sync(aq).receive() == b"poll"
    await asyncio.wait_for(waiting, 5)
    assert _sync(aq).receive_many(5, block=False) == [b"next"]


def test_a_receive_woken_when_no_thread_can_be_had_for_the_next_lets_it_poll(
    make_queue: Callable[..., AsyncQ], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two receives wait; the first is woken, and its watcher thread retires before the first's
    # task runs again. That task's last step asks for the second, and no thread can be had:
    # the second polls (before, RuntimeError came out of the first, and the second hung).
    sync = make_queue()
    q = AsyncQ.from_sync(sync)
    loop = asyncio.new_event_loop()
    tasks: List[Any] = []

    async def start() -> None:
        tasks.extend(asyncio.ensure_future(q.receive(4)) for _ in range(2))
        await _until(lambda: _watcher_asleep(q), "the watcher asleep in msgrcv")

    async def finish() -> List[bytes]:
        await _until(lambda: bool(failed), "a thread refused")
        sync.send(b"second", 4)
        return list(await asyncio.wait_for(asyncio.gather(*tasks), 10))

    try:
        loop.run_until_complete(start())
        watcher = sysvmq.asyncio._Service._all[loop].watchers[(q.id, 4, False)]
        _woken_by_hand(loop, sync, b"first", 4)  # the first receive is woken; its task has yet to run
        wait_for(lambda: watcher.thread is None, what="the watcher thread retired")
        failed: List[str] = []
        real = threading.Thread.start

        def refuse(thread: threading.Thread) -> None:
            if thread.name.startswith("sysvmq watcher"):
                failed.append(thread.name)
                raise RuntimeError("can't start new thread")
            real(thread)

        monkeypatch.setattr(threading.Thread, "start", refuse)
        assert loop.run_until_complete(finish()) == [b"first", b"second"]
    finally:
        monkeypatch.undo()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


@opcode_tracing
def test_an_exception_as_a_held_empty_message_is_taken_carries_it(aq: AsyncQ) -> None:
    # A handler may raise at any bytecode of a receive's take from what a watcher holds (its
    # lock's release too): the message is then still held, or the receive returns it, or its
    # exception carries it; never two of these, never none.
    loop = asyncio.new_event_loop()
    try:
        w = loop.run_until_complete(_service_of(loop)).watcher(aq.id, 0, False)
        codes = {
            sysvmq.asyncio._Watcher.take.__code__,
            sysvmq.asyncio._Watcher._take.__code__,
            sysvmq.asyncio._held.__code__,
            sysvmq.asyncio._count_held.__code__,
            sysvmq.asyncio._count_held_now.__code__,
            AsyncQ._held.__code__,
        }
        for step in itertools.count(1):
            with w.cond:
                w._keep(step, 7)  # held, as the outcome numbered step took it
            got: List[Any] = []
            exc, ran = raise_at(step, lambda f: f.f_code in codes, functools.partial(_receive_on, loop, aq, got))
            carried = getattr(exc, "received", None)
            with w.cond:
                held = w._holding()
            assert [got == [b""], bool(carried), held].count(True) == 1, (step, got, exc, carried, held)
            assert carried in (None, [], [Message(b"", 7)])
            with w.cond:
                w.held.clear()
            sysvmq.asyncio._HELD.pop(aq.id, None)
            if step > ran:
                break
        assert step > 10
    finally:
        loop.close()


def _receive_on(loop: asyncio.AbstractEventLoop, q: AsyncQ, got: List[Any]) -> None:
    got.append(loop.run_until_complete(q.receive(block=False)))


async def _service_of(loop: asyncio.AbstractEventLoop) -> Any:
    return sysvmq.asyncio._Service.of(loop)


EXIT_AFTER_RUN = """
import asyncio, select, sys, time
import sysvmq, sysvmq.asyncio

q = sysvmq.asyncio.SysVMQ.attach(int(sys.argv[1]))

def watcher_asleep():
    import os, threading
    for t in threading.enumerate():
        if t.name.startswith("sysvmq watcher") and t.native_id is not None:
            try:
                with open(f"/proc/self/task/{t.native_id}/wchan") as f:
                    return "msg" in f.read()
            except OSError:
                return False
    return False

async def main():
    waiting = asyncio.ensure_future(q.receive())
    while not watcher_asleep():
        await asyncio.sleep(0.005)
    sysvmq.SysVMQ.attach(q.id).send(b"", 7)  # the watcher takes it: it fits 0 bytes
    wake_r = sysvmq.asyncio._Service._all[asyncio.get_running_loop()].wake_r
    deadline = time.monotonic() + 10
    while not select.select([wake_r], [], [], 0)[0] and time.monotonic() < deadline:
        time.sleep(0.001)  # the loop's thread, kept from reading the pipe until the watcher wrote
    waiting.cancel()

asyncio.run(main())
print("done", flush=True)  # and the interpreter exits at once
"""


def test_an_empty_message_taken_for_a_cancelled_receive_is_back_when_the_process_ends(aq: AsyncQ) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXIT_AFTER_RUN, str(aq.id)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert _sync(aq).receive_many_messages(5, block=False) == [Message(b"", 7)]


async def test_sends_waiting_on_one_queue_share_one_thread_and_keep_their_order(aq: AsyncQ) -> None:
    aq.update(max_size=100)
    await aq.send(b"f" * 100)
    sends = [asyncio.ensure_future(aq.send(b"%03d" % i)) for i in range(50)]
    await _until(lambda: _sender_in_msgsnd(aq), "the first send asleep in msgsnd")  # all 50 are waiting by now
    assert [t.name for t in _sysvmq_threads() if t.name.endswith(f" {aq.id}")] == [f"sysvmq send {aq.id}"]
    assert _sync(aq).receive() == b"f" * 100
    assert [await aq.receive() for _ in range(50)] == [b"%03d" % i for i in range(50)]
    await asyncio.gather(*sends)


async def test_a_send_cancelled_before_its_turn_is_never_queued(aq: AsyncQ) -> None:
    aq.update(max_size=100)
    await aq.send(b"f" * 100)
    counts: List[object] = []

    async def sending(message: bytes) -> None:
        try:
            await aq.send(message)
        except asyncio.CancelledError as exc:
            counts.append(getattr(exc, "count", None))
            raise

    first, second, third = (asyncio.ensure_future(sending(m)) for m in (b"a" * 60, b"b" * 60, b"c" * 60))
    await _until(lambda: _sender_in_msgsnd(aq), "the first send asleep in msgsnd")
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert counts == [0]
    assert _sync(aq).receive() == b"f" * 100
    assert await aq.receive() == b"a" * 60
    assert await aq.receive() == b"c" * 60
    await asyncio.gather(first, third)
    assert aq.stats().count == 0


async def test_a_timed_send_waiting_its_turn_times_out_on_time(aq: AsyncQ) -> None:
    aq.update(max_size=100)
    await aq.send(b"f" * 100)
    first = asyncio.ensure_future(aq.send(b"a" * 60))  # waits with no timeout, ahead of the next
    await _until(lambda: _sender_in_msgsnd(aq), "the first send asleep in msgsnd")
    began = time.monotonic()
    with pytest.raises(sysvmq.QueueFull, match=r"within 0\.1 s") as full:
        await aq.send(b"b", timeout=0.1)
    assert 0.1 <= time.monotonic() - began < 1
    assert full.value.count == 0
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert _sync(aq).receive_many(5, block=False) == [b"f" * 100]


def test_a_send_pending_when_its_loop_is_closed_is_never_queued(make_queue: Callable[..., AsyncQ]) -> None:
    sync = make_queue()
    sync.update(max_size=4)
    sync.send(b"FULL")
    q = AsyncQ.from_sync(sync)
    loop = asyncio.new_event_loop()
    pending: List[Any] = []  # the task, kept from the garbage collector while the test looks

    async def main() -> None:
        pending.append(asyncio.ensure_future(q.send(b"late")))  # never awaited, never cancelled
        await _until(lambda: _sender_in_msgsnd(q), "the send asleep in msgsnd")

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    began = time.monotonic()
    wait_for(lambda: not [t for t in _sysvmq_threads() if t.name.endswith(f" {q.id}")], what="the sender gone")
    assert time.monotonic() - began < 1
    # Its thread ended without queueing it: nothing can queue it later.
    assert sync.receive_many(5, block=False) == [b"FULL"]
    assert not pending[0].done()


CTRL_C = """
import asyncio, json, sys
import sysvmq, sysvmq.asyncio

q = sysvmq.asyncio.SysVMQ.attach(int(sys.argv[1]))

async def main():
    waiting = [asyncio.ensure_future(q.receive(t)) for t in (1, 2)]
    print("waiting", flush=True)
    await asyncio.gather(*waiting)

try:
    asyncio.run(main())
except KeyboardInterrupt:
    import threading, time
    deadline = time.monotonic() + 5
    while any(t.name.startswith("sysvmq ") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps([t.name for t in threading.enumerate() if t.name.startswith("sysvmq ")]))
"""


def test_ctrl_c_leaves_the_queue_unchanged_and_no_thread_behind(aq: AsyncQ) -> None:
    sync = _sync(aq)
    sync.send(b"stays", 7)
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, str(aq.id)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "waiting"
        wait_for(
            lambda: sum(1 for t in os.listdir(f"/proc/{proc.pid}/task") if _in_msgrcv(proc.pid, int(t))) >= 2,
            what="the watchers asleep in msgrcv",
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads(out.strip().splitlines()[-1]) == [], err
    assert sync.receive_many_messages(10, block=False) == [Message(b"stays", 7)]


def _in_msgrcv(pid: int, tid: int) -> bool:
    try:
        with open(f"/proc/{pid}/task/{tid}/wchan") as f:
            return "msg" in f.read()
    except OSError:
        return False


POLLING = """
import asyncio, json, sys, threading
import sysvmq, sysvmq.asyncio

sysvmq.set_timer_signal(None)
q = sysvmq.asyncio.SysVMQ.private()

async def main():
    asyncio.get_running_loop().call_later(0.05, lambda: sysvmq.SysVMQ.attach(q.id).send(b"late"))
    got = await q.receive()
    try:
        await q.receive(timeout=0.05)
    except sysvmq.QueueEmpty:
        timed_out = True
    return got.decode(), timed_out, [t.name for t in threading.enumerate() if t.name.startswith("sysvmq ")]

try:
    print(json.dumps([sysvmq.timed_wait, *asyncio.run(main())]))
finally:
    q.destroy()
"""


def test_with_the_timer_turned_off_async_calls_poll() -> None:
    assert json.loads(run_python(POLLING).stdout) == ["poll", "late", True, []]


# -- locks a raising signal handler cannot leave held ------------------------------


def _raising_in_held(step: int, run: Callable[[], object], seen: List[Any]) -> int:
    """raise_at in sysvmq.asyncio._held, where every lock the loop's thread takes is taken; each
    lock it saw goes into ``seen``. How many bytecodes ran there."""
    held = sysvmq.asyncio._held.__code__

    def traced(frame: FrameType) -> bool:
        if frame.f_code is not held:
            return False
        seen.append(frame.f_locals["lock"])
        return True

    return raise_at(step, traced, run)[1]


def _free(lock: Any) -> bool:
    """Whether another thread can take the lock within 10 s."""
    out: List[bool] = []

    def take() -> None:
        got = lock.acquire(timeout=10)  # a watcher thread may hold it a moment: a lock left held, for ever
        if got:
            lock.release()
        out.append(got)

    t = threading.Thread(target=take)
    t.start()
    t.join(20)
    return out == [True]


@opcode_tracing
def test_held_releases_its_lock_wherever_a_handler_raises() -> None:
    for lock in (threading.RLock(), threading.Condition()):
        calls: List[int] = []
        for step in range(1, 100):
            seen: List[Any] = []
            ran = _raising_in_held(step, lambda: sysvmq.asyncio._held(lock, calls.append, step), seen)  # noqa: B023
            assert seen == [lock]
            assert _free(lock), f"left held after a raise at bytecode {step}"
            if step > ran:
                break
        assert len(calls) <= step and step > 10


def _drain(q: sysvmq.SysVMQ) -> None:
    with contextlib.suppress(sysvmq.QueueEmpty):
        while True:
            q.receive(block=False)


@opcode_tracing
def test_a_handler_raising_as_the_loop_takes_a_lock_leaves_none_held(queue: sysvmq.SysVMQ) -> None:
    # The awaited receive waits (a watcher is started), a send wakes it; an awaited send waits for
    # room in its line. Each step raises one bytecode later in a locked section: afterwards no lock
    # is left held, so that the next step (and every other loop) can go on.
    aq = sysvmq.asyncio.SysVMQ.attach(queue.id)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(aq.receive(timeout=0.2))
        await asyncio.sleep(0)  # one turn of the loop: it waits now
        queue.send(b"x")
        with contextlib.suppress(sysvmq.QueueEmpty):
            await waiting
        _drain(queue)  # x, if a raise kept the receive from it
        queue.update(max_size=1)
        queue.send(b"f")
        with contextlib.suppress(sysvmq.QueueFull):
            await aq.send(b"g", timeout=0.05)

    for step in itertools.count(1):
        seen: List[Any] = []
        ran = _raising_in_held(step, lambda: asyncio.run(scenario()), seen)
        left = [lock for lock in set(seen) if not _free(lock)]
        assert not left, f"{left} left held after a raise at bytecode {step}"
        queue.update(max_size=sysvmq.limits().msgmnb)
        _drain(queue)
        if step > ran:
            break
    assert step > 50, "the locked sections ran too few bytecodes to raise between"


@pytest.mark.parametrize("kind", ["RLock", "Condition"])
def test_held_inside_a_section_of_its_lock_keeps_the_outer_hold(kind: str) -> None:
    # A finalizer the garbage collector runs inside a section may take the same lock again.
    lock = getattr(threading, kind)()
    seen: List[bool] = []

    def other_thread_gets_it() -> None:
        out: List[bool] = []
        t = threading.Thread(target=lambda: out.append(lock.acquire(blocking=False)))
        t.start()
        t.join(10)
        if out == [True]:
            lock.release()
        seen.append(out == [True])

    def outer() -> None:
        sysvmq.asyncio._held(lock, lambda: None)  # the section within
        other_thread_gets_it()

    sysvmq.asyncio._held(lock, outer)
    assert seen == [False]  # the outer section still held it
    assert _free(lock)


@pytest.mark.parametrize("kind", ["RLock", "Condition"])
def test_held_releases_a_hold_a_second_raise_left_behind(kind: str) -> None:
    lock = getattr(threading, kind)()
    lock.acquire()  # as a second raise in _held's finally clause leaves it
    assert sysvmq.asyncio._held(lock, lambda: 7) == 7
    assert _free(lock)


# -- loop callbacks a raising signal handler cannot cut short ------------------------

_CALLBACKS = {sysvmq.asyncio._surely.__code__, sysvmq.asyncio._Service._woken.__code__}
_ASYNCIO_FILE = sysvmq.asyncio.__file__


# Where _surely's try begins: a raise before it (at the function's entry, as CPython 3.11+ checks
# for signals there) is asyncio's own window, as in its Handle._run, which no callback can close.
_SURELY_TRY = next(i.offset for i in dis.get_instructions(sysvmq.asyncio._surely) if i.argval == "fn")


def _past_entry(frame: FrameType) -> bool:
    return frame.f_code is not sysvmq.asyncio._surely.__code__ or frame.f_lasti >= _SURELY_TRY


def _in_callback(frame: FrameType) -> bool:
    """Whether the frame is sysvmq.asyncio's, run by a callback it gave the loop."""
    if frame.f_code.co_filename != _ASYNCIO_FILE:
        return False
    f: Any = frame
    while f is not None:
        if f.f_code in _CALLBACKS:
            return True
        f = f.f_back
    return False


def _this_loops_watcher_asleep(q: AsyncQ) -> bool:
    """Whether the running loop's watcher of q (any type) is asleep in msgrcv; the watcher of a
    loop that ended may linger beside it."""
    service = sysvmq.asyncio._Service._all.get(asyncio.get_running_loop())
    w = None if service is None else service.watchers.get((q.id, 0, False))
    thread = None if w is None else w.thread
    return thread is not None and thread.native_id is not None and _in_msgrcv(os.getpid(), thread.native_id)


def _this_loops_sender_in_msgsnd(q: AsyncQ) -> bool:
    """Whether the running loop's send line of q is in msgsnd (a line of a loop that ended may linger)."""
    senders = sysvmq.asyncio._Senders._all.get(asyncio.get_running_loop())
    line = None if senders is None else senders.lines.get(q.id)
    thread = None if line is None else line.thread
    return thread is not None and thread.native_id is not None and _in_msgrcv(os.getpid(), thread.native_id)


async def _receive_woken(q: AsyncQ, text: bytes) -> None:
    waiting = asyncio.ensure_future(q.receive(timeout=5))
    await _until(lambda: _this_loops_watcher_asleep(q), "the watcher asleep")
    _sync(q).send(text, 3)
    assert await waiting == text  # not QueueEmpty after 5 s: the wake-up was acted on


async def _receive_timing_out(q: AsyncQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty):
        await q.receive(timeout=0.02)  # long enough to wait, on a cold PyPy too


async def _send_given_room(q: AsyncQ) -> None:
    q.update(max_size=1)
    await q.send(b"f")
    sending = asyncio.ensure_future(q.send(b"g", timeout=5))
    await _until(lambda: _this_loops_sender_in_msgsnd(q), "the send asleep in msgsnd")
    assert _sync(q).receive() == b"f"
    assert await sending is None  # its outcome was settled


async def _send_timing_out_in_line(q: AsyncQ) -> None:
    q.update(max_size=1)
    await q.send(b"f")
    first = asyncio.ensure_future(q.send(b"g"))
    await _until(lambda: _this_loops_sender_in_msgsnd(q), "the first send asleep in msgsnd")
    with pytest.raises(sysvmq.QueueFull) as full:
        await q.send(b"h", timeout=0.02)  # expires in line, behind the first
    assert full.value.count == 0
    assert _sync(q).receive() == b"f"
    assert await first is None


SCENARIOS = {
    "a receive woken by a message": lambda q: _receive_woken(q, b"x"),
    "a receive woken by an empty message": lambda q: _receive_woken(q, b""),
    "a receive timing out": _receive_timing_out,
    "a send given room": _send_given_room,
    "a send timing out in its line": _send_timing_out_in_line,
}
LEFT = {  # what each scenario leaves queued
    "a send given room": [b"g"],
    "a send timing out in its line": [b"g"],
}


@opcode_tracing
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_handler_raising_in_a_loop_callback_leaves_no_call_hanging(aq: AsyncQ, scenario: str) -> None:
    # A handler may raise between any two bytecodes of a callback the loop runs for a waiting
    # call (a wake-up, a send's outcome, a deadline). Each step raises one bytecode later. Every
    # call still ends as it would have, within its own timeout, and nothing queued is lost or
    # duplicated; the exception reaches the loop's handler.
    limit = aq.stats().max_size
    raised: List[BaseException] = []

    async def run() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: raised.append(ctx["exception"]))
        await asyncio.wait_for(SCENARIOS[scenario](aq), 20)  # TimeoutError: a call left hanging

    for step in itertools.count(1):
        raised.clear()
        exc, ran = raise_at(step, _in_callback, lambda: asyncio.run(run()), _past_entry)
        assert exc is None, f"a raise at bytecode {step} of the callbacks reached the call"
        if step > ran:
            break
        assert [type(e) for e in raised] == [Halt], f"at bytecode {step}"
        aq.update(max_size=limit)
        left = []
        with contextlib.suppress(sysvmq.QueueEmpty):
            left = _sync(aq).receive_many(5, block=False)
        assert left == LEFT.get(scenario, []), f"at bytecode {step}"
    assert step > 10, "the callbacks ran too few bytecodes to raise between"
