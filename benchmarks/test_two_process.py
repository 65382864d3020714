"""A producer process and a consumer (this process) on one queue: messages per second.

The producer is forked before the benchmark starts and sends exactly what the
rounds will take, so it never outlives the benchmark; the consumer's time per
round is what is measured.
"""

import multiprocessing
from typing import Any, Callable

import pytest
from floors import SignatureFloor
from shapes import batch_size

import sysvmq

COUNT = 20_000  # messages per round
ROUNDS = 5
SIZES = [16, 4096]

# Each implementation: (producer(q, mq, cloop, size, total), consumer(q, mq, cloop, size) -> round).
Producer = Callable[[sysvmq.SysVMQ, Any, Any, int, int], None]
Consumer = Callable[[sysvmq.SysVMQ, Any, Any, int], Callable[[], object]]


def _c_producer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int, total: int) -> None:
    cloop.c_send(q.id, size, total)


def _c_consumer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int) -> Callable[[], object]:
    qid = q.id
    return lambda: cloop.c_receive(qid, size, COUNT)


def _send_all(send: Callable[[bytes], object], size: int, total: int) -> None:
    message = b"x" * size
    for _ in range(total):
        send(message)


def _receive_rounds(receive: Callable[[], object]) -> Callable[[], object]:
    def run() -> None:
        for _ in range(COUNT):
            receive()

    return run


def _sysv_ipc_producer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int, total: int) -> None:
    _send_all(mq.send, size, total)


def _sysv_ipc_consumer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int) -> Callable[[], object]:
    return _receive_rounds(mq.receive)


def _sysvmq_producer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int, total: int) -> None:
    _send_all(q.send, size, total)


def _sysvmq_consumer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int) -> Callable[[], object]:
    return _receive_rounds(q.receive)


def _floor_producer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int, total: int) -> None:
    _send_all(SignatureFloor(q).send, size, total)


def _floor_consumer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int) -> Callable[[], object]:
    return _receive_rounds(SignatureFloor(q).receive)


def _many_producer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int, total: int) -> None:
    n = batch_size(size)
    batch = [b"x" * size] * n
    for sent in range(0, total, n):
        q.send_many(batch[: min(n, total - sent)])


def _many_consumer(q: sysvmq.SysVMQ, mq: Any, cloop: Any, size: int) -> Callable[[], object]:
    n = batch_size(size)

    def run() -> None:
        got, receive_many = 0, q.receive_many
        while got < COUNT:
            got += len(receive_many(min(n, COUNT - got)))

    return run


IMPLS = {
    "c": (_c_producer, _c_consumer),
    "sysv_ipc": (_sysv_ipc_producer, _sysv_ipc_consumer),
    "signature_floor": (_floor_producer, _floor_consumer),
    "sysvmq": (_sysvmq_producer, _sysvmq_consumer),
    "sysvmq_many": (_many_producer, _many_consumer),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_two_processes(benchmark, request, queue: sysvmq.SysVMQ, cloop: Any, impl: str, size: int) -> None:  # type: ignore[no-untyped-def]
    mq = request.getfixturevalue("sysv_ipc_queue") if impl == "sysv_ipc" else None
    produce, consume = IMPLS[impl]
    rounds = 1 if benchmark.disabled else ROUNDS + 1  # one warm-up round
    producer = multiprocessing.get_context("fork").Process(
        target=produce, args=(queue, mq, cloop, size, rounds * COUNT), daemon=True
    )
    producer.start()
    try:
        benchmark.group = f"two processes {size} B"
        benchmark.extra_info.update(case="two processes", impl=impl, size=size, messages=COUNT)
        if benchmark.disabled:
            benchmark(consume(queue, mq, cloop, size))
        else:
            benchmark.pedantic(consume(queue, mq, cloop, size), rounds=ROUNDS, warmup_rounds=1)
        producer.join(30)
        assert producer.exitcode == 0
    finally:
        if producer.is_alive():
            producer.kill()
