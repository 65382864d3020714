"""The contract on every path: an exception raised out of a call says what the kernel had done.

``count`` on exceptions out of sends, ``received`` on exceptions out of
receives. Each interruption is driven, not hoped for: the test waits until
/proc shows the thread inside msgsnd or msgrcv, then signals, with a handler
that raises. Then it checks by content that every message is either still
queued or reported by the call (returned, counted or received), exactly once.
"""

import contextlib
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from support import signal_main_thread, wait_blocked, wait_for

import sysvmq
from sysvmq import Message, SysVMQ


class Stop(Exception):
    """What the test's signal handler raises."""


@contextlib.contextmanager
def raising_handler(signum: int = signal.SIGUSR1) -> Iterator[List[int]]:
    """A handler on signum that raises Stop; the list it yields counts its runs."""
    ran: List[int] = []

    def handler(sig: int, frame: object) -> None:
        ran.append(sig)
        raise Stop

    old = signal.signal(signum, handler)
    try:
        yield ran
    finally:
        signal.signal(signum, old)


def start(target: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def queued(q: SysVMQ) -> List[bytes]:
    """Every message still queued, taken off in order."""
    out: List[bytes] = []
    with contextlib.suppress(sysvmq.QueueEmpty):
        while True:
            out += q.receive_many(1000, block=False)
    return out


def signal_self_thread() -> None:
    """Deliver SIGUSR1 to the calling (helper) thread: its C handler marks it pending,
    and the main thread runs the Python handler at its next chance, without being interrupted."""
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)


# -- sends ------------------------------------------------------------------------


def test_send_many_count_includes_what_the_waiting_crossing_queued(queue: SysVMQ) -> None:
    # Ctrl-C while send_many waits in the kernel, after that same crossing queued two more.
    queue.update(max_size=3000)
    messages = [bytes([i]) * 1000 for i in range(10)]
    main = threading.get_native_id()
    taken: List[bytes] = []

    def helper() -> None:
        wait_blocked(main)  # three fitted; it waits for room
        taken.extend(queue.receive() for _ in range(2))
        wait_for(lambda: queue.stats().count == 3)  # the waiting crossing queued two more...
        wait_blocked(main)  # ...and waits again
        signal_main_thread()

    with raising_handler():
        t = start(helper)
        with pytest.raises(Stop) as info:
            queue.send_many(messages)
        t.join(10)
    assert info.value.count == 5  # type: ignore[attr-defined]
    assert taken + queued(queue) == messages[:5]


SENDS: Dict[str, Callable[[SysVMQ, List[bytes]], Optional[int]]] = {
    "send": lambda q, ms: q.send(ms[0]),
    "send(timeout)": lambda q, ms: q.send(ms[0], timeout=30),
    "send_many(timeout)": lambda q, ms: q.send_many(ms, timeout=30),
    "send_many": lambda q, ms: q.send_many(ms),
    "send_many(lengths)": lambda q, ms: q.send_many(b"".join(ms), lengths=[len(m) for m in ms]),
    "send_many(bytearray, lengths)": lambda q, ms: q.send_many(bytearray(b"".join(ms)), lengths=[len(m) for m in ms]),
}


@pytest.mark.parametrize("call", list(SENDS))
def test_a_handler_that_raises_after_the_send_counts_what_was_queued(queue: SysVMQ, call: str) -> None:
    # The signal goes to a helper thread: the sender's msgsnd is not
    # interrupted, it completes, and the handler raises as it returns.
    queue.update(max_size=1000)
    queue.send(b"f" * 1000)  # full
    messages = [b"m%d" % i for i in range(3)]
    main = threading.get_native_id()
    freed: List[bytes] = []

    def helper() -> None:
        wait_blocked(main)
        signal_self_thread()
        freed.append(queue.receive())

    with raising_handler() as ran:
        t = start(helper)
        returned: Optional[int] = None
        try:
            returned = SENDS[call](queue, messages) or 1
        except Stop as exc:
            count = exc.count  # type: ignore[attr-defined]
        else:
            count = returned
        t.join(10)
    assert ran and freed == [b"f" * 1000]
    sent = messages if call.startswith("send_many") else messages[:1]
    assert queued(queue) == sent[:count]
    assert count == len(sent)  # the kernel queued them all before the handler ran


@pytest.mark.parametrize("call", list(SENDS))
def test_a_handler_that_raises_while_the_send_waits_queues_nothing(queue: SysVMQ, call: str) -> None:
    queue.update(max_size=1000)
    queue.send(b"f" * 1000)
    main = threading.get_native_id()
    with raising_handler():
        t = start(lambda: (wait_blocked(main), signal_main_thread()))
        with pytest.raises(Stop) as info:
            SENDS[call](queue, [b"one", b"two"])
        t.join(10)
    assert info.value.count == 0  # type: ignore[attr-defined]
    assert queued(queue) == [b"f" * 1000]


# -- receives ---------------------------------------------------------------------


def _into(q: SysVMQ, **wait: Any) -> List[bytes]:
    buf = bytearray(64)
    n, _ = q.receive_into(buf, **wait)
    return [bytes(buf[:n])]


RECEIVES: Dict[str, Callable[[SysVMQ], List[bytes]]] = {
    "receive": lambda q: [q.receive()],
    "receive(type)": lambda q: [q.receive(7)],
    "receive(timeout)": lambda q: [q.receive(timeout=30)],
    "receive_into(timeout)": lambda q: _into(q, timeout=30),
    "receive_message": lambda q: [q.receive_message().data],
    "receive_into": _into,
    "receive_many": lambda q: q.receive_many(100),
    "receive_many_messages": lambda q: [m.data for m in q.receive_many_messages(100)],
    "receive_many(timeout)": lambda q: q.receive_many(100, timeout=30),
}


@pytest.mark.parametrize("call", list(RECEIVES))
def test_a_handler_that_raises_after_the_kernel_handed_over_keeps_the_messages(queue: SysVMQ, call: str) -> None:
    messages = [b"message %d" % i for i in range(50)]
    main = threading.get_native_id()

    def helper() -> None:
        wait_blocked(main)
        signal_self_thread()
        queue.send_many(messages, 7)

    with raising_handler() as ran:
        t = start(helper)
        got: List[bytes] = []
        received: List[Any] = []
        try:
            got = RECEIVES[call](queue)
        except Stop as exc:
            received = exc.received  # type: ignore[attr-defined]
        try:
            t.join(10)
        except Stop:  # PyPy may run the handler later still, once the call has returned and got holds it all
            t.join(10)
    assert ran
    assert all(isinstance(m, Message) and m.type == 7 for m in received)
    reported = got + [m.data for m in received]
    assert reported  # the kernel handed at least one over before the handler ran
    assert reported + queued(queue) == messages


@pytest.mark.parametrize("call", list(RECEIVES))
def test_a_handler_that_raises_while_the_receive_waits_takes_nothing(queue: SysVMQ, call: str) -> None:
    main = threading.get_native_id()
    with raising_handler():
        t = start(lambda: (wait_blocked(main), signal_main_thread()))
        with pytest.raises(Stop) as info:
            RECEIVES[call](queue)
        t.join(10)
    assert info.value.received == []  # type: ignore[attr-defined]
    queue.send(b"after")
    assert queued(queue) == [b"after"]


def test_every_sysvmq_error_out_of_a_receive_says_nothing_was_taken(queue: SysVMQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty) as info:
        queue.receive(block=False)
    assert info.value.received == []
    with pytest.raises(sysvmq.QueueEmpty) as many:
        queue.receive_many(5, timeout=0)
    assert many.value.received == []


def test_a_partial_nonblocking_send_many_returns_its_count(queue: SysVMQ) -> None:
    queue.update(max_size=3000)
    assert queue.send_many([b"x" * 1000] * 5, block=False) == 3
    with pytest.raises(sysvmq.QueueFull) as info:
        queue.send_many([b"y"], block=False)
    assert info.value.count == 0


# -- a handler pending as the crossing returns -----------------------------------------

STORMED: Dict[str, Callable[[SysVMQ], int]] = {  # each says how many messages it moved
    "send": lambda q: q.send(b"12345678") or 1,
    "send_many": lambda q: q.send_many([b"12345678"] * 2),
    "receive": lambda q: len([q.receive()]),
    "receive_many": lambda q: len(q.receive_many(3)),
}


@pytest.mark.parametrize("call", list(STORMED))
def test_a_handler_pending_as_the_crossing_returns_raises_inside_the_call(queue: SysVMQ, call: str) -> None:
    # A signal that comes while the call is in C, and not blocked in the kernel, is handled once
    # the crossing returns: on PyPy at the next backward jump, which was the caller's, after the
    # method had returned (its exception then said nothing of what the kernel had done). Under a
    # storm of raising handlers, most exceptions of calls that moved messages must carry count
    # or received. Measured (300 each): before, on PyPy, 5-15% did; now 84-92% on PyPy, and
    # all on CPython 3.11.
    sends = call.startswith("send")
    fill = [b"12345678"] * 1000
    armed = [False]
    moved = said = 0

    def handler(sig: int, frame: object) -> None:
        if armed[0]:
            armed[0] = False
            raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        expected = 0 if sends else queue.send_many(fill)
        deadline = time.monotonic() + 20
        while moved < 300 and time.monotonic() < deadline:
            try:
                armed[0] = True
                n = STORMED[call](queue)
                armed[0] = False
                expected += n if sends else -n
            except Stop as exc:
                armed[0] = False
                now = queue.stats().count
                if now != expected:
                    moved += 1
                    said += hasattr(exc, "count" if sends else "received")
                expected = now
            if sends and expected > 2000:
                armed[0] = False
                expected -= len(queued(queue))
            elif not sends and expected < 100:
                armed[0] = False
                expected += queue.send_many(fill)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert moved >= 300, "too few raises landed as the kernel moved messages"
    assert said >= 0.6 * moved, f"{moved - said} of {moved} exceptions of calls that moved messages said nothing"
