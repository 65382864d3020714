"""One process sends a message and receives it back, LOOP times per call: the cost per message.

Every implementation runs at every size in the same session, beside the C
floor (``cloop``) and sysv_ipc, so ``report.py`` can print ratios of medians
taken minutes apart on the same machine.
"""

from typing import Any, Callable, List

import pytest
from floors import BatchFloor, SignatureFloor, cffi_floor_loop
from shapes import LOOP, batch_size, messages_per_call

import sysvmq

SIZES = [16, 256, 4096, 8192]


def _c(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    qid = q.id
    return lambda: cloop.c_roundtrip(qid, size, LOOP)


def _c_copies(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    qid = q.id
    return lambda: cloop.c_roundtrip_copies(qid, size, LOOP)


def _round_trips(send: Callable[[bytes], object], receive: Callable[[], object], size: int) -> Callable[[], object]:
    message = b"x" * size

    def run() -> None:
        for _ in range(LOOP):
            send(message)
            receive()

    return run


def _sysv_ipc(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    return _round_trips(mq.send, mq.receive, size)


def _sysvmq(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    return _round_trips(q.send, q.receive, size)


def _sysvmq_message(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    # The single call that returns what receive_many_messages does, Message(data, type).
    return _round_trips(q.send, q.receive_message, size)


def _sysvmq_timed(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    # The message is there: a timed receive's first try takes it, without waiting.
    return _round_trips(q.send, lambda: q.receive(timeout=1), size)


def _into_round_trips(
    send: Callable[[bytes], object], receive_into: Callable[[bytearray], object], size: int
) -> Callable[[], object]:
    message, buf = b"x" * size, bytearray(size)

    def run() -> None:
        for _ in range(LOOP):
            send(message)
            receive_into(buf)

    return run


def _sysvmq_into(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    return _into_round_trips(q.send, q.receive_into, size)


def _into_floor(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    floor = SignatureFloor(q)
    return _into_round_trips(floor.send, floor.receive_into, size)


def _batch_round_trips(
    send_many: Callable[[List[bytes]], object], receive_many: Callable[[int], object], size: int
) -> Callable[[], object]:
    n = batch_size(size)
    batch = [b"x" * size] * n

    def run() -> None:
        for _ in range(LOOP // n):
            send_many(batch)
            receive_many(n)

    return run


def _sysvmq_many(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    return _batch_round_trips(q.send_many, q.receive_many, size)


def _sysvmq_many_messages(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    return _batch_round_trips(q.send_many, q.receive_many_messages, size)


def _sysvmq_many_lengths(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    # The texts already end to end in one buffer, as a caller that builds them there holds them.
    n = batch_size(size)
    buffer, lengths = bytearray(b"x" * size * n), [size] * n

    def run() -> None:
        for _ in range(LOOP // n):
            q.send_many(buffer, lengths=lengths)
            q.receive_many(n)

    return run


def _batch_floor(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    floor = BatchFloor(q, batch_size(size))
    return _batch_round_trips(floor.send_many, floor.receive_many, size)


def _cffi_floor(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    # What sysvmq adds in Python is the difference from this row.
    return cffi_floor_loop(q, b"x" * size, LOOP)  # type: ignore[no-any-return]


def _signature_floor(q: sysvmq.SysVMQ, size: int, cloop: Any, mq: Any) -> Callable[[], object]:
    floor = SignatureFloor(q)
    return _round_trips(floor.send, floor.receive, size)


IMPLS = {
    "c": _c,
    "c_copies": _c_copies,
    "sysv_ipc": _sysv_ipc,
    "cffi_floor": _cffi_floor,
    "signature_floor": _signature_floor,
    "sysvmq": _sysvmq,
    "sysvmq_message": _sysvmq_message,
    "sysvmq_timed": _sysvmq_timed,
    "into_floor": _into_floor,
    "sysvmq_into": _sysvmq_into,
    "batch_floor": _batch_floor,
    "sysvmq_many": _sysvmq_many,
    "sysvmq_many_messages": _sysvmq_many_messages,
    "sysvmq_many_lengths": _sysvmq_many_lengths,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_roundtrip(benchmark, request, queue: sysvmq.SysVMQ, cloop: Any, impl: str, size: int) -> None:  # type: ignore[no-untyped-def]
    mq = request.getfixturevalue("sysv_ipc_queue") if impl == "sysv_ipc" else None
    run = IMPLS[impl](queue, size, cloop, mq)
    benchmark.group = f"roundtrip {size} B"
    benchmark.extra_info.update(case="roundtrip", impl=impl, size=size, messages=messages_per_call(impl, size))
    benchmark(run)
    assert queue.stats().count == 0
