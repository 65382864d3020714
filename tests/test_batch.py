"""send_many, receive_many and receive_many_messages: one call into C for many messages."""

import array
import contextlib
import ctypes
import platform
import signal
import struct
import sys
import threading
from typing import Any, List

import pytest
from support import LONG_MAX, fill, signal_main_thread, wait_blocked

import sysvmq
from sysvmq import Message, SysVMQ


def drain(q: SysVMQ) -> list:  # type: ignore[type-arg]
    out = []
    while True:
        try:
            out.append(q.receive_message(block=False))
        except sysvmq.QueueEmpty:
            return out


def test_send_many_queues_all_in_order_with_their_type(queue: SysVMQ) -> None:
    batch = [b"a", "bé", bytearray(b"cc"), memoryview(b"ddd"), array.array("b", b"ee"), b""]
    assert queue.send_many(batch, 4) == 6
    assert drain(queue) == [(b"a", 4), ("bé".encode(), 4), (b"cc", 4), (b"ddd", 4), (b"ee", 4), (b"", 4)]


def test_send_many_sends_the_bytes_of_wide_buffers(queue: SysVMQ) -> None:
    ints = array.array("i", [1, 2])
    queue.send_many([ints, b"x"])
    assert [m.data for m in drain(queue)] == [ints.tobytes(), b"x"]


def test_send_many_of_nothing_is_zero(queue: SysVMQ) -> None:
    assert queue.send_many([]) == 0
    assert queue.stats().count == 0


@pytest.mark.parametrize("messages", [iter([b"a"]), (m for m in [b"a"]), {b"a"}, b"ab", "ab", None], ids=repr)
def test_send_many_wants_a_sequence(queue: SysVMQ, messages: object) -> None:
    with pytest.raises(TypeError, match="messages must be a sequence"):
        queue.send_many(messages)  # type: ignore[arg-type]
    assert queue.stats().count == 0


def test_send_many_checks_every_message_before_sending(queue: SysVMQ) -> None:
    with pytest.raises(TypeError, match=r"messages\[2\] must be bytes"):
        queue.send_many([b"ok", b"ok", 3, b"ok"])
    with pytest.raises(TypeError, match=r"messages\[1\] must be .*strided"):
        queue.send_many([b"ok", _strided()])
    assert queue.stats().count == 0


def _strided() -> object:
    # A 2-D non-contiguous view: join refuses it on every interpreter.
    return memoryview(bytearray(16)).cast("B", (4, 4))[::2]


def test_send_many_message_above_msgmax_sends_nothing(queue: SysVMQ) -> None:
    msgmax = sysvmq.limits().msgmax
    with pytest.raises(sysvmq.MessageTooLarge, match=rf"messages\[1\] of {msgmax + 1} bytes exceeds kernel\.msgmax"):
        queue.send_many([b"a", b"x" * (msgmax + 1)])
    assert queue.stats().count == 0


@pytest.mark.parametrize("mtype", [0, -3, LONG_MAX + 1, 2**63])
def test_send_many_type_out_of_range(queue: SysVMQ, mtype: int) -> None:
    with pytest.raises(ValueError, match="type must be 1"):
        queue.send_many([b"a"], mtype)
    assert queue.stats().count == 0


def test_send_many_nonblocking_stops_at_a_full_queue(queue: SysVMQ) -> None:
    queue.update(max_size=3000)
    assert queue.send_many([b"x" * 1000] * 5, block=False) == 3
    assert queue.stats().count == 3
    with pytest.raises(sysvmq.QueueFull) as info:
        queue.send_many([b"x" * 1000] * 5, block=False)
    assert info.value.count == 0


def test_send_many_timeout_carries_the_count(queue: SysVMQ) -> None:
    queue.update(max_size=3000)
    with pytest.raises(sysvmq.QueueFull, match=r"within 0\.05 s") as info:
        queue.send_many([b"x" * 1000] * 5, timeout=0.05)
    assert info.value.count == 3
    assert queue.stats().count == 3


def test_send_many_blocks_until_all_fit(queue: SysVMQ) -> None:
    total = 500
    got: list = []  # type: ignore[type-arg]
    consumer = threading.Thread(target=lambda: got.extend(queue.receive(timeout=30) for _ in range(total)))
    consumer.start()
    assert queue.send_many([i.to_bytes(2, "big") * 256 for i in range(total)]) == total
    consumer.join(30)
    assert got == [i.to_bytes(2, "big") * 256 for i in range(total)]


@pytest.mark.parametrize("wait", [{"block": False}, {"timeout": 0}, {"timeout": 5}, {}])
def test_send_many_message_above_max_size_sends_nothing_in_every_mode(queue: SysVMQ, wait: dict) -> None:  # type: ignore[type-arg]
    queue.update(max_size=100)
    with pytest.raises(
        sysvmq.MessageTooLarge, match=r"messages\[2\] of 101 bytes exceeds the queue's max_size \(100\)"
    ) as info:
        queue.send_many([b"a" * 50, b"b" * 50, b"c" * 101], **wait)
    assert info.value.count == 0
    assert queue.stats().count == 0


def test_send_many_interrupted_by_a_raising_handler_carries_the_count(queue: SysVMQ) -> None:
    queue.update(max_size=3000)

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Stop

    sender_tid = threading.get_native_id()
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        # Signal this (main) thread once it sleeps in msgsnd on the full queue.
        t = threading.Thread(target=lambda: (wait_blocked(sender_tid), signal_main_thread()))
        t.start()
        with pytest.raises(Stop) as info:
            queue.send_many([b"x" * 1000] * 5)
        t.join(10)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert info.value.count == 3  # type: ignore[attr-defined]
    assert queue.stats().count == 3


def test_receive_many_takes_what_is_queued_up_to_max_count(queue: SysVMQ) -> None:
    queue.send_many([b"1", b"2", b"3"])
    assert queue.receive_many(2) == [b"1", b"2"]
    assert queue.receive_many(10) == [b"3"]


def test_receive_many_waits_for_the_first(queue: SysVMQ) -> None:
    sender = threading.Thread(target=lambda: queue.send_many([b"late", b"later"], 6))
    waiter: list = []  # type: ignore[type-arg]
    t = threading.Thread(target=lambda: waiter.append(queue.receive_many_messages(5, 6)))
    t.start()
    wait_blocked(t.native_id)
    sender.start()
    sender.join(10)
    t.join(10)
    # The waiter may wake between the two sends: it gets one or both, never more.
    got = waiter[0] + drain(queue)
    assert got == [Message(b"late", 6), Message(b"later", 6)]
    assert 1 <= len(waiter[0]) <= 2


def test_receive_many_empty_queue(queue: SysVMQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty):
        queue.receive_many(4, block=False)
    with pytest.raises(sysvmq.QueueEmpty, match=r"within 0\.02 s"):
        queue.receive_many(4, timeout=0.02)


def test_receive_many_by_type_and_negative_type(queue: SysVMQ) -> None:
    for t in (3, 1, 2, 1, 5):
        queue.send(str(t), t)
    assert queue.receive_many(10, 1) == [b"1", b"1"]
    assert queue.receive_many_messages(10, -3) == [Message(b"2", 2), Message(b"3", 3)]  # lowest type first
    assert queue.receive_many(10) == [b"5"]


def test_receive_many_first_too_large_stays_queued(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=4)
    q.send(b"too long")
    with pytest.raises(sysvmq.MessageTooLarge):
        q.receive_many(3)
    assert q.receive_many(3, truncate=True) == [b"too "]


def test_receive_many_stops_before_a_too_large_message(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=4)
    q.send_many([b"ok", b"fine", b"too long", b"after"])
    assert q.receive_many(10) == [b"ok", b"fine"]
    with pytest.raises(sysvmq.MessageTooLarge):
        q.receive_many(10)
    assert q.stats().count == 2


def test_receive_many_returns_the_batch_when_the_queue_goes(queue: SysVMQ) -> None:
    queue.send(b"only")
    assert queue.receive_many(5) == [b"only"]
    queue.destroy()
    with pytest.raises(sysvmq.QueueRemoved):
        queue.receive_many(5, block=False)


@pytest.mark.parametrize("count", [0, -1])
def test_receive_many_max_count_at_least_one(queue: SysVMQ, count: int) -> None:
    with pytest.raises(ValueError, match="max_count must be at least 1"):
        queue.receive_many(count)


def test_receive_many_timeout_with_nowait_is_value_error(queue: SysVMQ) -> None:
    with pytest.raises(ValueError, match="timeout cannot be combined"):
        queue.receive_many(3, block=False, timeout=1)


def test_receive_many_beyond_one_crossing(queue: SysVMQ) -> None:
    # More messages than one crossing takes (256): the call makes several.
    messages = [i.to_bytes(2, "big") * 8 for i in range(300)]
    assert queue.send_many(messages) == 300
    assert queue.receive_many(1000, block=False) == messages


def test_receive_many_goes_on_when_room_runs_out(queue: SysVMQ, monkeypatch: pytest.MonkeyPatch) -> None:
    # With room for one buffer_size message per crossing, each crossing takes one.
    monkeypatch.setattr(sysvmq._calls, "BATCH_BYTES", 1)
    messages = [bytes([i]) * 100 for i in range(50)]
    queue.send_many(messages)
    assert queue.receive_many(60) == messages


def test_batches_round_trip_through_a_full_queue(queue: SysVMQ) -> None:
    n = fill(queue, 100)
    got = queue.receive_many(n)
    assert len(got) == n
    assert got == [b"f" * 100] * n


def test_receive_many_survives_a_signal_handler_that_returns(queue: SysVMQ) -> None:
    ran = threading.Event()
    old = signal.signal(signal.SIGALRM, lambda s, f: ran.set())
    sender = threading.Thread(target=lambda: (ran.wait(10), queue.send_many([b"after", b"signal"])))
    try:
        sender.start()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        got = queue.receive_many(5, timeout=30)
        sender.join(10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ran.is_set()
    if len(got) < 2:  # it may wake between the two sends
        got += queue.receive_many(5, block=False)
    assert got == [b"after", b"signal"]


@pytest.mark.parametrize("buffer", [b"onetwothree", bytearray(b"onetwothree"), memoryview(b"xxonetwothree")[2:]])
def test_send_many_from_one_buffer_and_lengths(queue: SysVMQ, buffer: object) -> None:
    assert queue.send_many(buffer, 4, lengths=[3, 3, 0, 5]) == 4
    assert queue.receive_many_messages(10) == [Message(t, 4) for t in (b"one", b"two", b"", b"three")]


def test_send_many_from_one_buffer_stops_at_a_full_queue_and_says_where(queue: SysVMQ) -> None:
    queue.update(max_size=3000)
    buffer = bytes(range(250)) * 20  # 5,000 bytes: five texts of 1,000
    lengths = [1000] * 5
    assert queue.send_many(buffer, lengths=lengths, block=False) == 3
    with pytest.raises(sysvmq.QueueFull) as info:
        queue.send_many(buffer, lengths=lengths, timeout=0.01)
    assert info.value.count == 0
    assert queue.receive_many(10) == [buffer[i * 1000 : (i + 1) * 1000] for i in range(3)]


def test_send_many_from_one_buffer_checks_each_text_against_max_size(queue: SysVMQ) -> None:
    queue.update(max_size=100)
    with pytest.raises(sysvmq.MessageTooLarge, match=r"messages\[1\] of 101 bytes"):
        queue.send_many(b"a" * 151, lengths=[50, 101])
    assert queue.stats().count == 0


def test_send_many_from_a_bytearray_releases_it(queue: SysVMQ) -> None:
    buffer = bytearray(b"abcd")
    queue.send_many(buffer, lengths=[2, 2])
    buffer += b"more"  # it can grow again: the call released it
    assert queue.receive_many(5) == [b"ab", b"cd"]


@pytest.mark.parametrize(
    "case",
    ["full, block=False", "full, timeout", "too large", "lengths do not add up", "lengths not ints"],
)
def test_send_many_from_a_bytearray_releases_it_when_it_raises(queue: SysVMQ, case: str) -> None:
    queue.update(max_size=100)
    queue.send(b"f" * 100)
    buffer = bytearray(b"x" * 101 if case == "too large" else b"abcd")
    lengths: List[Any] = {"too large": [101], "lengths do not add up": [1, 2], "lengths not ints": [2.0, 2]}.get(
        case, [2, 2]
    )
    with pytest.raises((sysvmq.SysVMQError, ValueError, TypeError)):
        queue.send_many(
            buffer,
            lengths=lengths,
            block=case != "full, block=False",
            timeout=0.001 if case == "full, timeout" else None,
        )
    buffer += b"more"  # BufferError if the call still held its export
    assert queue.stats().count == 1


@pytest.mark.skipif(sys.implementation.name == "pypy", reason="PyPy's ctypes dies (SIGFPE) on an array of empty arrays")
def test_send_many_cuts_by_bytes_when_item_counts_of_odd_buffers_add_up(queue: SysVMQ) -> None:
    # len() of a buffer counts items of its first dimension: 3 for three empty arrays (0 bytes), 1 for
    # one C int (4 bytes). Their sum equals the bytes joined, so only each text's own byte count cuts right.
    empties = (ctypes.c_char * 0 * 3)()
    four = array.array("i", [int.from_bytes(b"ABCD", sys.byteorder)])
    assert (len(empties) + len(four), memoryview(empties).nbytes + four.itemsize) == (4, 4)
    assert queue.send_many([empties, four]) == 2
    assert [m.data for m in drain(queue)] == [b"", b"ABCD"]


# send_many's first crossing checks every length against the queue's limit and the call state's
# room in C, and refuses (nothing sent) if one fails or the reading is stale: Python then checks
# again, says which message, grows the state, refreshes the reading.


@pytest.mark.parametrize("at", [0, 1, 5])
def test_send_many_longer_than_the_state_grows_it_wherever_the_long_one_is(make_queue, at: int) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=4)  # states made with room for 4 bytes
    batch = [b"ab"] * 6
    batch[at] = b"y" * 1000
    assert q.send_many(batch, 3) == 6
    assert q.send_many(batch, 3) == 6  # again, with the grown state back in the pool
    assert drain(SysVMQ.attach(q.id)) == [(m, 3) for m in batch] * 2  # a handle that receives them whole


@pytest.mark.parametrize("at", [0, 2])
def test_send_many_above_max_size_wherever_it_is_sends_nothing_and_says_which(queue: SysVMQ, at: int) -> None:
    queue.update(max_size=100)
    batch = [b"ok"] * 3
    batch[at] = b"x" * 101
    with pytest.raises(sysvmq.MessageTooLarge, match=rf"messages\[{at}\] of 101 bytes") as caught:
        queue.send_many(batch)
    assert caught.value.count == 0
    assert queue.stats().count == 0


def test_send_many_reads_a_stale_limit_anew(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue()
    other = SysVMQ.attach(q.id)  # another handle, whose reading the update does not touch
    assert other.send_many([b"x" * 200]) == 1
    q.update(max_size=100)
    other._capacity.until = -1.0  # type: ignore[attr-defined]  # as if a second had passed
    with pytest.raises(sysvmq.MessageTooLarge, match=r"messages\[0\] of 200 bytes"):
        other.send_many([b"x" * 200])
    assert other._capacity.max_size == 100  # type: ignore[attr-defined]
    assert [m.data for m in drain(q)] == [b"x" * 200]  # room again under the lowered max_size
    other._capacity.until = -1.0  # type: ignore[attr-defined]
    assert other.send_many([b"a", b"b"]) == 2  # a stale reading that still fits: sent after the refresh
    assert [m.data for m in drain(q)] == [b"a", b"b"]


# Up to SYSVMQ_FEW texts go to C each where its bytes object holds it (no join); more, or other
# kinds of text, are joined first. Either way each message has its own text, in order, and a send
# that stops at a full queue goes on with the right one, sending none twice.


class _Bytes(bytes):
    pass


@pytest.mark.parametrize(
    "batch",
    [
        [b"abcd"],
        [b"", b"abc", b"de"],
        [b"a", b"", b"bc", b"def"],
        [b"a", b"", b"bc", b"def", b"g"],
        [_Bytes(b"xy"), b"z"],
        [b"xy", _Bytes(b"z"), b"", b"w", b"v"],
    ],
    ids=lambda batch: "-".join(str(len(m)) for m in batch),
)
def test_send_many_cuts_few_and_many_texts_where_they_end(queue: SysVMQ, batch: List[bytes]) -> None:
    assert queue.send_many(batch, 2) == len(batch)
    assert drain(queue) == [(bytes(m), 2) for m in batch]


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_send_many_goes_on_where_a_full_queue_stopped_it(queue: SysVMQ, count: int) -> None:
    queue.update(max_size=1500)  # one message at a time
    messages = [bytes([65 + i]) * 1000 for i in range(count)]
    assert queue.send_many(messages, block=False) == 1
    got = [queue.receive()]
    consumer = threading.Thread(target=lambda: got.extend(queue.receive(timeout=30) for _ in range(count)))
    consumer.start()
    assert queue.send_many(messages, 5) == count
    consumer.join(30)
    assert got == messages[:1] + messages
    with pytest.raises(sysvmq.QueueFull, match=r"within 0\.05 s") as info:
        queue.send_many([b"x" * 1000, *messages], timeout=0.05)
    assert info.value.count == 1


# receive_many's format (CPython) is written anew only when a batch's sizes or count differ from
# the last one's, and the struct made from it is kept until then: each batch is still cut by its own.


@pytest.mark.parametrize("typed", [False, True], ids=["receive_many", "receive_many_messages"])
def test_receive_many_cuts_each_batch_by_its_own_sizes(queue: SysVMQ, typed: bool) -> None:
    receive = queue.receive_many_messages if typed else queue.receive_many
    batches = [[3, 5], [3, 5], [5, 3], [5, 3, 1], [5, 3], [4, 4], [4, 4], [0], [0, 0], [4, 4]]
    for i, sizes in enumerate(batches):
        batch = [bytes([97 + k]) * size for k, size in enumerate(sizes)]
        queue.send_many(batch, i + 1)
        # Every other batch through the general path (a timeout), which writes the format as well.
        got = receive(len(sizes), timeout=5) if i % 3 == 2 else receive(len(sizes))
        assert got == ([Message(m, i + 1) for m in batch] if typed else batch)


# -- messages that are not what they say: lengths come from their bytes ---------------------


def _drain(q: SysVMQ) -> List[bytes]:
    out: List[bytes] = []
    with contextlib.suppress(sysvmq.QueueEmpty):
        while True:
            out.append(q.receive(block=False))
    return out


class _LyingLen(bytes):
    """A bytes subclass whose len() is not its size."""

    def __len__(self) -> int:
        return 1


class _LongLen(bytes):
    def __len__(self) -> int:
        return 4000


class _PosingArray(array.array):  # type: ignore[type-arg]
    """An array of C ints that says its __class__ is bytes: isinstance(x, bytes) believes it."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return bytes


@pytest.mark.parametrize("count", [1, 4, 5, 8])
@pytest.mark.parametrize("kind", [list, tuple])
def test_send_many_cuts_bytes_subclasses_by_their_bytes_not_their_len(queue: SysVMQ, count: int, kind: type) -> None:
    # A subclass's __len__ may say anything: the texts are cut where its bytes end (found in
    # review: len() cut them where __len__ said).
    batch = kind(_LyingLen(b"abc%d" % i) for i in range(count))
    assert queue.send_many(batch) == count
    assert _drain(queue) == [b"abc%d" % i for i in range(count)]


class _Says(bytes):
    """A bytes subclass whose len() is what it was told."""

    def __new__(cls, data: bytes, says: int) -> "_Says":
        self = super().__new__(cls, data)
        self.says = says
        return self

    def __len__(self) -> int:
        return self.says  # type: ignore[no-any-return]


@pytest.mark.parametrize("mtype", [1, LONG_MAX - 6])  # a C long on 32-bit machines too
@pytest.mark.parametrize("inside", [False, True], ids=["plain", "type_inside"])
def test_send_many_cuts_texts_by_their_bytes_when_lying_lens_add_up(queue: SysVMQ, mtype: int, inside: bool) -> None:
    # Their sum is right, and with "type_inside" the first text holds the type's bytes where
    # its len() ends, where a join's gap would be: only the texts' bytes can say where they end
    # (found in review: the fast path believed len() and C's check of the gaps was fooled).
    first = b"ab" + (struct.pack("l", mtype) if inside else b"xyzw") + b"cd"
    batch = [_Says(first, 2), _Says(b"ef", len(first)), b"ijk", b"l", b"mn"]
    assert queue.send_many(batch, mtype) == 5
    assert [queue.receive_message(block=False) for _ in batch] == [(bytes(t), mtype) for t in batch]
    assert queue.stats().count == 0


@pytest.mark.skipif(platform.python_implementation() == "PyPy", reason="PyPy's join of a 0-byte ctypes array faults")
def test_send_many_cuts_builtin_buffers_by_their_bytes_not_their_len(queue: SysVMQ) -> None:
    # No class of the caller's own: len() of a view of C ints counts 4 items of 16 bytes, that
    # of 12 rows of 0 bytes counts 12; the sum is right, and bytes 4..12 of the ints are type 1.
    ints = memoryview(array.array("i", [5, 1, 0, 7]))
    rows = (ctypes.c_char * 0 * 12)()
    batch: List[Any] = [ints, rows, b"x", b"y", b"z"]
    assert [len(t) for t in batch] == [4, 12, 1, 1, 1]
    assert queue.send_many(batch) == 5
    assert [queue.receive_message(block=False) for _ in batch] == [(bytes(t), 1) for t in batch]


@pytest.mark.parametrize("send", ["send", "send_many"])
def test_a_bytes_subclass_whose_len_is_larger_is_never_read_past(queue: SysVMQ, send: str) -> None:
    # len() says 4000 and the object holds 2 bytes: C would have copied 3,998 bytes of
    # whatever follows in memory into the queue (heap pointers, seen in review).
    if send == "send":
        queue.send(_LongLen(b"xy"), block=False)
    else:
        assert queue.send_many([_LongLen(b"xy")], block=False) == 1
    assert _drain(queue) == [b"xy"]


@pytest.mark.parametrize(
    "empty", [bytearray(), memoryview(b""), array.array("B")], ids=["bytearray", "memoryview", "array"]
)
def test_send_many_takes_an_empty_buffer_among_its_messages(queue: SysVMQ, empty: Any) -> None:
    # PyPy's ffi.unpack refuses a 0-byte buffer (RuntimeError): the empty text is b"".
    assert queue.send_many([b"a", empty]) == 2
    assert _drain(queue) == [b"a", b""]


@pytest.mark.parametrize("send", ["send", "send_many"])
def test_a_buffer_posing_as_bytes_is_cut_by_its_bytes(queue: SysVMQ, send: str) -> None:
    # isinstance() consults __class__; the real type decides, and len() of the borrowed buffer
    # counts its 8 bytes, not its 2 items.
    ints = _PosingArray("i", [1, 2])
    if send == "send":
        queue.send(ints)
        assert _drain(queue) == [array.array("i", [1, 2]).tobytes()]
    else:
        assert queue.send_many([ints, b"a", b"b", b"c", b"d"]) == 5
        assert _drain(queue) == [array.array("i", [1, 2]).tobytes(), b"a", b"b", b"c", b"d"]


# -- a list that changes, or only says it is a list: C reads what the snapshot holds --------


def _shortener(msgs: List[bytes], filler: bytes) -> Any:
    """A profile hook that cuts msgs to 5 as send_many's first len() returns, once."""
    armed = [True]

    def hook(frame: Any, event: str, arg: Any) -> None:
        if armed[0] and event == "c_return" and arg is len and frame.f_code.co_name == "send_many":
            armed[0] = False
            del msgs[5:]
            junk = [filler[1:] for _ in range(64)]  # 64-byte blocks, as the lengths array's
            del junk

    return hook


def test_send_many_list_shrunk_after_its_len_sends_only_what_the_snapshot_holds(queue: SysVMQ) -> None:
    # A genuine list. Something else (another thread; here a profile hook, which runs at the same
    # points a thread switch can) shortens it right after send_many's len(messages), before
    # messages[:]. total still says 8, the lengths array holds 5: C reads 3 size_t past its end
    # (batch_fits, then sysvmq_send_many), and sends what they say from past the joined texts.
    # The freed blocks below only make those 3 words predictable (0 or 300), so the read shows.
    for word in (0, 300):
        filler = bytes(8) + struct.pack("@N", word) * 3  # [1:]: a new 31-byte bytes each time
        for _ in range(20):
            msgs = [b"%d" % i * 3 for i in range(8)]
            sys.setprofile(_shortener(msgs, filler))
            try:
                n = queue.send_many(msgs)
            finally:
                sys.setprofile(None)
            got = _drain(queue)
            texts = {b"%d" % i * 3 for i in range(8)}  # before or after the cut, these are the caller's
            assert n == len(got) and all(g in texts for g in got), (
                f"send_many of a list shortened from 8 to 5 after its len() returned {n} and queued {len(got)} "
                f"messages: {[g[:24] for g in got]} (C read the lengths array, and then the texts, out of bounds)"
            )


class _Shifty:
    """An iterable that gives 100-byte texts the first time and 1-byte texts after."""

    def __init__(self) -> None:
        self.k = 0

    def __iter__(self) -> Any:
        self.k += 1
        return iter([b"a" * 100] * 5 if self.k == 1 else [b"b"] * 5)


class _FakeList:
    """Not a list, though its __class__ says so: send_many's fast path takes it for one."""

    __class__ = list  # type: ignore[assignment]

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: Any) -> Any:
        return _Shifty()


@pytest.mark.parametrize("kw", [{}, {"timeout": 5}, {"block": False}], ids=["fast", "timeout", "nonblocking"])
def test_send_many_snapshot_of_a_faked_list_is_read_once(queue: SysVMQ, kw: Any) -> None:
    # messages.__class__ is list is believed, so messages[:] may be any iterable; _byte_lengths
    # iterates it, b"".join iterates it again: 500 bytes of lengths over a 5-byte blob, and C
    # copies 495 bytes of whatever follows the blob into the queue (heap pointers were seen).
    try:
        n = queue.send_many(_FakeList(), **kw)
    except TypeError:
        return  # refusing it is fine
    got = _drain(queue)
    allowed = {b"a" * 100, b"b"}
    assert n == len(got) and all(g in allowed for g in got), (
        f"send_many queued {n} messages that are not the caller's texts: {[(len(g), g[:24]) for g in got]}"
        " (C read past the end of the joined texts)"
    )


@pytest.mark.parametrize("k", [2, 5])
def test_send_many_names_the_str_it_cannot_encode(queue: SysVMQ, k: int) -> None:
    # Low: a lone surrogate raises UnicodeEncodeError from str.encode in message_arg, which says
    # "position 0" but not which message; every other refusal of a text names messages[i].
    messages: List[Any] = [b"a"] * k
    messages[1] = "ok \ud800"
    with pytest.raises(ValueError) as info:
        queue.send_many(messages)
    assert "messages[1]" in str(info.value), f"the error does not say which message: {info.value!r}"
    assert _drain(queue) == []
