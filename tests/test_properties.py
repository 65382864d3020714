"""Property: any bytes with any type come back identical, and the stats stay exact."""

from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import LONG_MAX, register, remove

import sysvmq
from sysvmq import SysVMQ

MSGMAX = sysvmq.limits().msgmax


@pytest.fixture(scope="module")
def shared() -> Iterator[SysVMQ]:
    # Hypothesis runs many examples per test: one module-scoped queue, emptied by each example.
    q = register(SysVMQ.private())
    q.update(max_size=max(q.stats().max_size, 2 * MSGMAX))
    yield q
    remove(q)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=MSGMAX), mtype=st.integers(1, LONG_MAX))
def test_any_bytes_any_type_round_trip(shared: SysVMQ, data: bytes, mtype: int) -> None:
    shared.send(data, mtype)
    st_ = shared.stats()
    assert (st_.count, st_.size) == (1, len(data))
    assert shared.receive_message(block=False) == (data, mtype)
    st_ = shared.stats()
    assert (st_.count, st_.size) == (0, 0)


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(st.tuples(st.binary(max_size=256), st.integers(1, 5)), max_size=20))
def test_typed_receive_keeps_per_type_order(shared: SysVMQ, messages: list) -> None:  # type: ignore[type-arg]
    for data, mtype in messages:
        shared.send(data, mtype)
    assert shared.stats().size == sum(len(d) for d, _ in messages)
    for mtype in range(1, 6):
        expected = [d for d, t in messages if t == mtype]
        got = []
        while True:
            try:
                got.append(shared.receive(mtype, block=False))
            except sysvmq.QueueEmpty:
                break
        assert got == expected
    assert shared.stats().count == 0


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(st.tuples(st.binary(max_size=40), st.integers(1, LONG_MAX)), min_size=1, max_size=40))
def test_receive_many_messages_returns_each_text_and_type_whole(shared: SysVMQ, messages: list) -> None:  # type: ignore[type-arg]
    # receive_many lays the texts end to end, each type landing on the end of the
    # one before it for a moment: any lengths, alignments and types must survive that.
    for data, mtype in messages:
        shared.send(data, mtype)
    got = shared.receive_many_messages(len(messages), block=False)
    assert got == [sysvmq.Message(data, mtype) for data, mtype in messages]
    assert shared.stats().count == 0


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.binary(max_size=40), min_size=1, max_size=40), mtype=st.integers(1, LONG_MAX))
def test_send_many_sends_each_text_whole(shared: SysVMQ, texts: list, mtype: int) -> None:  # type: ignore[type-arg]
    # One crossing sends them all from one joined text: any lengths must arrive
    # whole and in order, and the caller's objects stay as they were.
    before = [bytes(t) for t in texts]
    assert shared.send_many(texts, mtype) == len(texts)
    assert texts == before
    got = [shared.receive_message(block=False) for _ in texts]
    assert got == [sysvmq.Message(t, mtype) for t in before]
    assert shared.stats().count == 0
