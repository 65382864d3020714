"""Blocking calls: threads, signals (PEP 475), Ctrl-C, removal while waiting, timed waits."""

import functools
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from types import FrameType
from typing import Any, Callable, List, Optional

import pytest
from support import SLEEPING, fill, note_created, opcode_tracing, raise_at, wait_blocked

import sysvmq
from sysvmq import SysVMQ


def _in_thread(target, *args):  # type: ignore[no-untyped-def]
    """Start target in a thread; the returned dict gets 'result' or 'error'."""
    out: dict = {}  # type: ignore[type-arg]

    def run() -> None:
        try:
            out["result"] = target(*args)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    out["thread"] = t
    return out


def test_other_threads_run_while_one_blocks_in_receive(queue: SysVMQ) -> None:
    blocked = _in_thread(queue.receive, 7)
    wait_blocked(blocked["thread"].native_id)
    # This thread holds the GIL freely, and uses the same handle, while the other waits in the kernel.
    total = sum(range(200_000))
    queue.send(b"mine", 1)
    assert queue.receive(1) == b"mine"
    assert total == 199_999 * 100_000
    queue.send(b"wake", 7)
    blocked["thread"].join(10)
    assert blocked["result"] == b"wake"


def test_several_threads_block_on_one_handle(queue: SysVMQ) -> None:
    waiters = [_in_thread(queue.receive_message, t) for t in (1, 2, 3)]
    for w in waiters:
        wait_blocked(w["thread"].native_id)
    for t in (3, 1, 2):
        queue.send(f"for {t}", t)
    for t, w in zip((1, 2, 3), waiters):
        w["thread"].join(10)
        assert w["result"] == (f"for {t}".encode(), t)


def test_threads_sharing_a_handle_exchange_exactly_once(queue: SysVMQ) -> None:
    per_thread = 2_000
    received: List[List[bytes]] = [[] for _ in range(4)]

    def producer(n: int) -> None:
        for i in range(per_thread):
            queue.send(f"{n}:{i}".encode(), n + 1)

    def consumer(n: int) -> None:
        buf = bytearray(64)
        for _ in range(per_thread):
            size, mtype = queue.receive_into(buf, n + 1, timeout=30)
            assert mtype == n + 1
            received[n].append(bytes(buf[:size]))

    threads = [threading.Thread(target=f, args=(n,)) for n in range(4) for f in (producer, consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for n in range(4):
        assert received[n] == [f"{n}:{i}".encode() for i in range(per_thread)]
    assert queue.stats().count == 0


def test_signal_handler_runs_and_blocked_receive_completes(queue: SysVMQ) -> None:
    ran = threading.Event()

    def handler(signum: int, frame: object) -> None:
        ran.set()

    def send_after_handler() -> None:
        ran.wait(10)
        queue.send(b"after the signal", 5)

    old = signal.signal(signal.SIGALRM, handler)
    try:
        sender = threading.Thread(target=send_after_handler)
        sender.start()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert queue.receive(5) == b"after the signal"
        assert ran.is_set()
        sender.join(10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_signal_during_timed_receive_keeps_the_deadline(queue: SysVMQ) -> None:
    ran = threading.Event()
    old = signal.signal(signal.SIGALRM, lambda s, f: ran.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        start = time.monotonic()
        with pytest.raises(sysvmq.QueueEmpty):
            queue.receive(timeout=0.2)
        assert ran.is_set()
        assert 0.2 <= time.monotonic() - start < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_signal_handler_raising_ends_blocked_send_with_nothing_queued(queue: SysVMQ) -> None:
    n = fill(queue)

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Stop):
            queue.send(b"never queued" * 100)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert queue.stats().count == n


def test_blocked_receiver_gets_queue_removed(queue: SysVMQ) -> None:
    blocked = _in_thread(queue.receive)
    wait_blocked(blocked["thread"].native_id)
    queue.destroy()
    blocked["thread"].join(10)
    assert isinstance(blocked.get("error"), sysvmq.QueueRemoved)


def test_blocked_sender_gets_queue_removed(queue: SysVMQ) -> None:
    fill(queue)
    blocked = _in_thread(queue.send, b"f" * 1024)
    wait_blocked(blocked["thread"].native_id)
    queue.destroy()
    blocked["thread"].join(10)
    assert isinstance(blocked.get("error"), sysvmq.QueueRemoved)


def _waiting(thread: threading.Thread) -> None:
    """Until a timed call's thread waits: in the kernel with the timer, or between polls without."""
    assert thread.native_id is not None
    wait_blocked(thread.native_id, where="msg" if sysvmq.timed_wait == "timer" else SLEEPING)


def test_timed_receive_takes_a_message_that_arrives(queue: SysVMQ) -> None:
    waiter = _in_thread(lambda: queue.receive(3, timeout=30))
    _waiting(waiter["thread"])
    queue.send(b"late", 3)
    waiter["thread"].join(10)
    assert waiter["result"] == b"late"


def test_timed_send_takes_room_that_appears(queue: SysVMQ) -> None:
    fill(queue)
    waiter = _in_thread(lambda: queue.send(b"f" * 1024, 9, timeout=30))
    _waiting(waiter["thread"])
    queue.receive()
    waiter["thread"].join(10)
    assert "error" not in waiter
    assert queue.receive(9) == b"f" * 1024


def test_sigint_to_a_receiver_blocked_in_a_child_leaves_the_queue_unchanged(queue: SysVMQ) -> None:
    queue.send(b"not for the child", 1)
    code = textwrap.dedent(
        """
        import sys, sysvmq
        q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
        try:
            q.receive(2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(queue.id)], stdout=subprocess.PIPE, text=True)
    try:
        wait_blocked(child.pid, child.pid)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=10)
    finally:
        child.kill()
    assert out.strip() == "interrupted"
    assert child.returncode == 0
    assert queue.stats().count == 1
    assert queue.receive_message() == (b"not for the child", 1)


def _raise_at(step: int, entry: Any, run: Callable[[], object]) -> Optional[BaseException]:
    """raise_at in the frames of the code ``entry`` and of sysvmq/_calls.py functions it calls:
    what it raised, or None if they ran fewer bytecodes than ``step``."""
    where = sysvmq._calls.__file__

    def traced(frame: FrameType) -> bool:
        code, caller = frame.f_code, frame.f_back
        return code is entry or (code.co_filename == where and caller is not None and caller.f_code is entry)

    exc, ran = raise_at(step, traced, run)
    assert exc is not None or ran, "no bytecode of the code under test ran: the test proves nothing"
    return exc


@opcode_tracing
def test_a_handler_raising_as_a_call_state_is_made_leaves_no_later_call_blocked(queue: SysVMQ) -> None:
    # A handler that raises can unwind any Python code in sysvmq, so none may take a lock that
    # its unwinding could leave held: once, on PyPy, a lock around making a call's state was,
    # and every later call that needed a new state blocked for ever. Each step raises one
    # bytecode later in making a state (a receive_into of a buffer too big to keep one for).
    entry = sysvmq._calls.Call.__init__.__code__
    big = bytearray(sysvmq._calls.POOL_ROOM + 1)
    queue.send(b"x")
    for step in itertools.count(1):
        exc = _raise_at(step, entry, functools.partial(queue.receive_into, big, block=False))
        if exc is None:
            assert big[:1] == b"x"
            break
        assert not getattr(exc, "received", None)  # raised before the call reached the queue
        assert queue.stats().count == 1
        other = _in_thread(sysvmq._calls.Call, queue.id, 0, 1)  # another thread makes a state
        other["thread"].join(10)
        assert "result" in other, f"making a state blocked after a raise at bytecode {step}"
    assert step > 10, "making a state ran too few bytecodes to raise between"


@opcode_tracing
@pytest.mark.parametrize("call", ["send_many", "receive_into"])
def test_a_handler_raising_as_a_call_state_grows_leaves_none_half_made_in_the_pool(queue: SysVMQ, call: str) -> None:
    # A state grows (a new struct in place of the old) for a text longer than the handle's
    # buffer_size. A handler may raise between any two of its bytecodes: the state must then be
    # whole or out of the pool, never pointing into freed memory. Each step raises one later.
    small = SysVMQ.attach(queue.id, buffer_size=64)
    text = b"x" * 1000
    entry = sysvmq._calls.Call.grow.__code__
    ffi = sysvmq._ffi.ffi
    for step in itertools.count(1):
        if call == "send_many":  # refused by C for the state's room: it grows, then sends
            exc = _raise_at(step, entry, functools.partial(small.send_many, [text]))
            if exc is None:
                assert queue.receive() == text
            else:
                assert exc.count == 0  # type: ignore[attr-defined]
        else:  # truncate: the path that grows
            queue.send(text)
            buffer = bytearray(2000)
            exc = _raise_at(step, entry, functools.partial(small.receive_into, buffer, truncate=True))
            if exc is None:
                assert bytes(buffer[:1000]) == text
            else:
                assert exc.received == []  # type: ignore[attr-defined]
                assert queue.receive() == text
        assert queue.stats().count == 0
        for state in small._pool.calls:  # type: ignore[attr-defined]
            c = state.c
            assert state.room == c.room > 0
            assert ffi.from_buffer(state.text) == c.mtext and len(state.text) == state.room
            assert ffi.from_buffer(state.mtype) == ffi.addressof(c[0], "mtype")
            assert ffi.cast("char *", state.mem) == ffi.cast("char *", c)
        small._pool.calls.clear()  # type: ignore[attr-defined]  # the next step grows again
        small._calls.clear()  # type: ignore[attr-defined]
        if exc is None:
            break
    assert step > 20, "Call.grow ran too few bytecodes to raise between"


def test_child_processes_exchange_both_ways() -> None:
    code = textwrap.dedent(
        """
        import sys, sysvmq
        q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
        for _ in range(100):
            data, t = q.receive_message(1)
            q.send(data[::-1], 2)
        """
    )
    q = sysvmq.SysVMQ.private()
    note_created(q.id)
    try:
        child = subprocess.Popen([sys.executable, "-c", code, str(q.id)])
        for i in range(100):
            q.send(f"message {i}", 1)
        replies = [q.receive(2, timeout=30) for _ in range(100)]
        assert child.wait(30) == 0
        assert replies == [f"message {i}"[::-1].encode() for i in range(100)]
        assert q.stats().count == 0
    finally:
        q.destroy()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_process_exit_leaves_the_queue_as_it_was(queue: SysVMQ) -> None:
    # A handle holds no OS resource: a process that exits without cleanup leaves the queue as it was.
    queue.send(b"kept")
    pid = os.fork()
    if pid == 0:
        os._exit(0 if SysVMQ.attach(queue.id).peek() == (b"kept", 1) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert queue.receive() == b"kept"
