"""send and the receive family: payloads, types, flags, non-blocking calls, timeouts, sizes."""

import array
import gc
import math
import time

import pytest
from support import LONG_MAX, LONG_MIN, fill

import sysvmq
from sysvmq import SysVMQ

SIZES = [0, 1, 16, 255, 4096]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_bytes(queue: SysVMQ, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    queue.send(payload)
    assert queue.receive() == payload


def test_round_trip_at_msgmax(queue: SysVMQ) -> None:
    payload = b"m" * sysvmq.limits().msgmax
    queue.send(payload)
    assert queue.receive() == payload


def test_empty_message(queue: SysVMQ) -> None:
    queue.send(b"")
    assert queue.stats().count == 1
    assert queue.receive() == b""


def test_nul_bytes_survive(queue: SysVMQ) -> None:
    queue.send(b"\x00a\x00\x00b\x00")
    assert queue.receive() == b"\x00a\x00\x00b\x00"


def test_str_is_sent_as_utf8_and_counted_in_bytes(queue: SysVMQ) -> None:
    queue.send("ø" * 5)
    assert queue.stats().size == len("ø".encode()) * 5 == 10
    assert queue.receive().decode("utf-8") == "ø" * 5


def test_five_bytes_report_five_byte_queue(queue: SysVMQ) -> None:
    queue.send("B" * 5)
    assert queue.stats().size == 5


@pytest.mark.parametrize(
    "message",
    [bytearray(b"buffer"), memoryview(b"buffer"), array.array("b", b"buffer"), memoryview(b"xbuffer")[1:]],
    ids=["bytearray", "memoryview", "array", "sliced-memoryview"],
)
def test_buffers_are_sent_as_their_bytes(queue: SysVMQ, message: object) -> None:
    queue.send(message)
    assert queue.receive() == b"buffer"


def test_multibyte_buffer_sends_all_its_bytes(queue: SysVMQ) -> None:
    ints = array.array("i", [1, 2, 3])
    queue.send(ints)
    assert queue.receive() == ints.tobytes()


def test_sent_bytearray_is_released_and_can_grow(queue: SysVMQ) -> None:
    data = bytearray(b"abc")
    queue.send(data)
    data.extend(b"def")  # BufferError if the send still held its export
    assert queue.receive() == b"abc"


@pytest.mark.parametrize("message", [42, None, ["a"], 1.5])
def test_message_of_wrong_type_is_type_error(queue: SysVMQ, message: object) -> None:
    with pytest.raises(TypeError, match="message must be bytes"):
        queue.send(message)
    assert queue.stats().count == 0


def test_non_contiguous_buffer_is_type_error(queue: SysVMQ) -> None:
    with pytest.raises(TypeError, match="C-contiguous"):
        queue.send(memoryview(b"abcdef")[::2])


def test_typed_receive(queue: SysVMQ) -> None:
    queue.send("10", 10)
    queue.send("5", 5)
    assert queue.receive(5) == b"5"
    assert queue.receive(10) == b"10"


def test_negative_type_takes_lowest_type_up_to_its_absolute_value(queue: SysVMQ) -> None:
    queue.send("10", 10)
    queue.send("5", 5)
    queue.send("7", 7)
    assert queue.receive(-7) == b"5"
    assert queue.receive(-7) == b"7"
    assert queue.receive(-10) == b"10"


def test_type_zero_takes_messages_in_order(queue: SysVMQ) -> None:
    for t in (3, 1, 2):
        queue.send(str(t), t)
    assert [queue.receive_message() for _ in range(3)] == [(b"3", 3), (b"1", 1), (b"2", 2)]


def test_msg_except_takes_any_other_type(queue: SysVMQ) -> None:
    queue.send("a", 1)
    queue.send("b", 2)
    assert queue.receive_message(1, sysvmq.MSG_EXCEPT) == sysvmq.Message(b"b", 2)


@pytest.mark.parametrize("mtype", [LONG_MAX, 1])
def test_full_c_long_types(queue: SysVMQ, mtype: int) -> None:
    queue.send(b"t", mtype)
    assert queue.receive_message(mtype).type == mtype


@pytest.mark.parametrize("mtype", [0, -1, LONG_MAX + 1, 2**63])
def test_send_type_out_of_range_is_value_error(queue: SysVMQ, mtype: int) -> None:
    with pytest.raises(ValueError, match=r"type must be 1\.\."):
        queue.send(b"x", mtype)
    assert queue.stats().count == 0


@pytest.mark.parametrize("mtype", ["1", 1.0, None])
def test_type_of_wrong_type_is_type_error(queue: SysVMQ, mtype: object) -> None:
    with pytest.raises(TypeError, match="type must be an int"):
        queue.send(b"x", mtype)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="type must be an int"):
        queue.receive(mtype)  # type: ignore[arg-type]


@pytest.mark.parametrize("mtype", [LONG_MAX + 1, LONG_MIN - 1, 2**63])
def test_receive_type_beyond_c_long_is_value_error(queue: SysVMQ, mtype: int) -> None:
    queue.send(b"stays")
    with pytest.raises(ValueError, match=r"type must fit a C long \("):
        queue.receive(mtype)
    assert queue.receive() == b"stays"


def test_lowest_c_long_receive_type_means_any_type(queue: SysVMQ) -> None:
    queue.send(b"t", LONG_MAX)
    assert queue.receive(LONG_MIN) == b"t"


def test_lowest_c_long_receive_type_is_worded_as_the_kernel_reads_it(queue: SysVMQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty, match=rf"no message of type <= {LONG_MAX}$"):
        queue.receive(LONG_MIN, block=False)


def test_unknown_flags_are_value_error(queue: SysVMQ) -> None:
    with pytest.raises(ValueError, match="unknown flag bits"):
        queue.send(b"x", 1, sysvmq.MSG_NOERROR)
    with pytest.raises(ValueError, match="unknown flag bits"):
        queue.receive(0, sysvmq.IPC_CREAT)


def test_msg_copy_in_receive_points_to_peek(queue: SysVMQ) -> None:
    with pytest.raises(ValueError, match="peek"):
        queue.receive(0, sysvmq.MSG_COPY)


def test_nonblocking_send_and_receive(queue: SysVMQ) -> None:
    queue.send("Hello World", 1, sysvmq.IPC_NOWAIT)
    assert queue.receive(0, sysvmq.IPC_NOWAIT) == b"Hello World"


@pytest.mark.parametrize("how", [{"block": False}, {"flags": sysvmq.IPC_NOWAIT}])
def test_empty_queue_raises_queue_empty(queue: SysVMQ, how: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(sysvmq.QueueEmpty) as info:
        queue.receive(**how)
    assert info.value.errno == 42  # ENOMSG


def test_no_message_of_the_type_names_it(queue: SysVMQ) -> None:
    queue.send(b"other", 1)
    with pytest.raises(sysvmq.QueueEmpty, match="of type 3"):
        queue.receive(3, block=False)
    assert queue.stats().count == 1


@pytest.mark.parametrize("how", [{"block": False}, {"flags": sysvmq.IPC_NOWAIT}])
def test_full_queue_raises_queue_full(queue: SysVMQ, how: dict) -> None:  # type: ignore[type-arg]
    n = fill(queue)
    with pytest.raises(sysvmq.QueueFull) as info:
        queue.send(b"f" * 1024, **how)
    assert info.value.errno == 11  # EAGAIN
    assert queue.stats().count == n


def test_receive_timeout_raises_queue_empty(queue: SysVMQ) -> None:
    start = time.monotonic()
    with pytest.raises(sysvmq.QueueEmpty, match=r"within 0\.05 s"):
        queue.receive(timeout=0.05)
    assert 0.05 <= time.monotonic() - start < 5


def test_send_timeout_raises_queue_full(queue: SysVMQ) -> None:
    n = fill(queue)
    start = time.monotonic()
    with pytest.raises(sysvmq.QueueFull, match=r"within 0\.05 s"):
        queue.send(b"f" * 1024, timeout=0.05)
    assert 0.05 <= time.monotonic() - start < 5
    assert queue.stats().count == n


def test_timeout_zero_is_one_try(queue: SysVMQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty):
        queue.receive(timeout=0)
    queue.send(b"there")
    assert queue.receive(timeout=0) == b"there"


def test_timeout_inf_blocks_like_none(queue: SysVMQ) -> None:
    queue.send(b"x")
    assert queue.receive(timeout=math.inf) == b"x"
    queue.send(b"y", timeout=math.inf)
    assert queue.receive() == b"y"


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan])
def test_bad_timeout_is_value_error(queue: SysVMQ, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        queue.receive(timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        queue.send(b"x", timeout=timeout)
    assert queue.stats().count == 0


def test_timeout_of_wrong_type_is_type_error(queue: SysVMQ) -> None:
    with pytest.raises(TypeError, match="timeout"):
        queue.receive(timeout="1")  # type: ignore[arg-type]


@pytest.mark.parametrize("how", [{"block": False}, {"flags": sysvmq.IPC_NOWAIT}])
def test_timeout_with_nowait_is_value_error(queue: SysVMQ, how: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match="timeout cannot be combined"):
        queue.receive(timeout=1, **how)
    with pytest.raises(ValueError, match="timeout cannot be combined"):
        queue.send(b"x", timeout=1, **how)


def test_message_above_msgmax_is_too_large_and_not_queued(queue: SysVMQ) -> None:
    msgmax = sysvmq.limits().msgmax
    with pytest.raises(sysvmq.MessageTooLarge, match=rf"{msgmax + 1} bytes exceeds kernel\.msgmax \({msgmax}\)"):
        queue.send(b"x" * (msgmax + 1))
    assert queue.stats().count == 0


def test_message_above_max_size_is_too_large_instead_of_blocking(queue: SysVMQ) -> None:
    queue.update(max_size=100)
    with pytest.raises(sysvmq.MessageTooLarge, match=r"101 bytes exceeds the queue's max_size \(100\)") as info:
        queue.send(b"x" * 101)
    assert "update(max_size=" in str(info.value)
    assert "kernel.msgmnb" in str(info.value)
    assert queue.stats().count == 0


def test_max_size_lowered_after_a_full_queue_send_is_still_checked(queue: SysVMQ) -> None:
    fill(queue)
    with pytest.raises(sysvmq.QueueFull):  # this send read max_size while waiting for room
        queue.send(b"f" * 1024, timeout=0.01)
    while queue.stats().count:
        queue.receive()
    queue.update(max_size=100)
    # A timeout, so that a skipped check fails as QueueFull instead of hanging.
    with pytest.raises(sysvmq.MessageTooLarge, match=r"max_size \(100\)"):
        queue.send(b"x" * 101, timeout=5)


def test_message_too_large_for_buffer_stays_queued(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=4)
    q.send(b"12345")
    with pytest.raises(sysvmq.MessageTooLarge, match="4-byte buffer") as info:
        q.receive()
    assert info.value.errno == 7  # E2BIG
    assert q.stats().count == 1
    assert q.receive(truncate=True) == b"1234"
    assert q.stats().count == 0


def test_msg_noerror_flag_truncates(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=2)
    q.send(b"abc")
    assert q.receive(0, sysvmq.MSG_NOERROR) == b"ab"


def test_receive_message_returns_data_and_type(queue: SysVMQ) -> None:
    queue.send(b"typed", 42)
    message = queue.receive_message()
    assert message == (b"typed", 42)
    assert (message.data, message.type) == (b"typed", 42)


def test_receive_into_bytearray(queue: SysVMQ) -> None:
    queue.send(b"into", 9)
    buf = bytearray(16)
    assert queue.receive_into(buf) == (4, 9)
    assert buf[:4] == b"into"


def test_receive_into_may_exceed_buffer_size(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=8)
    q.send(b"y" * 100)
    buf = bytearray(100)
    assert q.receive_into(buf) == (100, 1)
    assert buf == b"y" * 100


def test_receive_into_memoryview_slice_and_array(queue: SysVMQ) -> None:
    queue.send(b"abcd")
    buf = bytearray(b"--------")
    assert queue.receive_into(memoryview(buf)[2:6]) == (4, 1)
    assert buf == b"--abcd--"
    queue.send(b"\x01\x00\x00\x00\x02\x00\x00\x00")
    ints = array.array("i", [0, 0])
    queue.receive_into(ints)
    assert list(ints) == [1, 2]


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


def test_receive_into_a_huge_buffer_keeps_no_huge_memory(queue: SysVMQ) -> None:
    # 256 MiB of room is used for that call, then given back, not kept in the handle's pool.
    before = _vm_size()
    buf = bytearray(256 << 20)
    queue.send(b"small")
    assert queue.receive_into(buf) == (5, 1)
    del buf
    gc.collect()
    assert _vm_size() - before < 64 << 20
    queue.send(b"again")
    assert queue.receive() == b"again"


def test_send_says_how_it_copies() -> None:
    assert "copied once" in (SysVMQ.send.__doc__ or "")


def test_receive_into_too_small_buffer_leaves_the_message(queue: SysVMQ) -> None:
    queue.send(b"too long")
    with pytest.raises(sysvmq.MessageTooLarge):
        queue.receive_into(bytearray(3))
    buf = bytearray(3)
    assert queue.receive_into(buf, truncate=True) == (3, 1)
    assert buf == b"too"


@pytest.mark.parametrize("buffer", [b"read-only", memoryview(b"ro"), "str", 3])
def test_receive_into_rejects_read_only_and_non_buffers(queue: SysVMQ, buffer: object) -> None:
    queue.send(b"stays")
    with pytest.raises(TypeError, match="writable"):
        queue.receive_into(buffer)
    assert queue.stats().count == 1


def test_receive_into_rejects_non_contiguous(queue: SysVMQ) -> None:
    with pytest.raises(TypeError, match="C-contiguous"):
        queue.receive_into(memoryview(bytearray(8))[::2])


def test_receive_into_timeout_and_nowait(queue: SysVMQ) -> None:
    with pytest.raises(sysvmq.QueueEmpty):
        queue.receive_into(bytearray(4), block=False)
    with pytest.raises(sysvmq.QueueEmpty):
        queue.receive_into(bytearray(4), timeout=0.01)


@pytest.mark.parametrize("case", ["block=False", "timeout", "too small"])
def test_receive_into_releases_the_buffer_when_it_raises(queue: SysVMQ, case: str) -> None:
    if case == "too small":
        queue.send(b"too long")
    buf = bytearray(3)
    with pytest.raises((sysvmq.QueueEmpty, sysvmq.MessageTooLarge)):
        queue.receive_into(buf, block=case != "block=False", timeout=0.001 if case == "timeout" else None)
    buf += b"more"  # BufferError if the call still held its export


def test_peek_copies_without_taking(queue: SysVMQ) -> None:
    for i, t in enumerate((5, 6, 7)):
        queue.send(f"m{i}", t)
    assert queue.peek() == (b"m0", 5)
    assert queue.peek(2) == (b"m2", 7)
    assert queue.stats().count == 3
    with pytest.raises(sysvmq.QueueEmpty, match="index 3"):
        queue.peek(3)
    assert queue.receive() == b"m0"


def test_peek_too_large_and_truncate(make_queue) -> None:  # type: ignore[no-untyped-def]
    q = make_queue(buffer_size=2)
    q.send(b"abcdef")
    with pytest.raises(sysvmq.MessageTooLarge):
        q.peek()
    assert q.peek(truncate=True) == (b"ab", 1)
    assert q.stats().count == 1


def test_peek_negative_index_is_value_error(queue: SysVMQ) -> None:
    with pytest.raises(ValueError, match="index"):
        queue.peek(-1)


def test_hundred_thousand_round_trips(queue: SysVMQ) -> None:
    message = b"Hello World"
    for _ in range(100_000):
        queue.send(message)
        if queue.receive() != message:
            pytest.fail("a round trip changed the message")
    assert queue.stats().count == 0


def test_multiple_queues_with_different_buffer_sizes(make_queue) -> None:  # type: ignore[no-untyped-def]
    small, large = make_queue(buffer_size=1024), make_queue(buffer_size=2048)
    large.send(b"B" * 2048)
    small.send(b"A" * 1024)
    assert large.receive() == b"B" * 2048
    assert small.receive() == b"A" * 1024
