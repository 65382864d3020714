"""Review of batch3 (send_many's fast paths, receive_many's kept format): reproducers of what broke."""

import array
import sys
import threading
from typing import List

import pytest

import sysvmq
from sysvmq import SysVMQ


def drain(q: SysVMQ) -> list:  # type: ignore[type-arg]
    out = []
    while True:
        try:
            out.append(q.receive_message(block=False).data)
        except sysvmq.QueueEmpty:
            return out


class _LyingLen(bytes):
    """A bytes subclass whose len() is not its size: bytes.__len__ still counts its bytes."""

    def __len__(self) -> int:
        return 1


@pytest.mark.parametrize("count", [1, 4, 5, 8])
@pytest.mark.parametrize("kind", [list, tuple])
def test_send_many_cuts_bytes_subclasses_by_their_bytes_not_their_len(queue: SysVMQ, count: int, kind: type) -> None:
    # Before batch3, lengths were taken with bytes.__len__ (the bytes a subclass holds); now
    # len() is used, so a subclass's __len__ decides where texts are cut: wrong texts queued
    # (and a __len__ larger than the object makes C read past the joined bytes).
    batch = kind(_LyingLen(b"abc%d" % i) for i in range(count))
    assert queue.send_many(batch) == count
    assert drain(queue) == [b"abc%d" % i for i in range(count)]


class _LongLen(bytes):
    def __len__(self) -> int:
        return 4000


def test_send_many_never_reads_past_a_bytes_subclass_whose_len_is_larger(queue: SysVMQ) -> None:
    # len() says 4000, the object holds 2 bytes: C copies 3,998 bytes of whatever follows the
    # joined text in memory into the queue (heap pointers, seen), an out-of-bounds read.
    assert queue.send_many([_LongLen(b"xy")], block=False) == 1
    assert drain(queue) == [b"xy"]


@pytest.mark.parametrize("batch", [[b"a", bytearray()], [b"a", memoryview(b"")], [b"a", array.array("B")]], ids=["bytearray", "memoryview", "array"])
def test_send_many_takes_an_empty_buffer_among_its_messages(queue: SysVMQ, batch: list) -> None:  # type: ignore[type-arg]
    # PyPy: an empty array.array makes pack()'s ffi.unpack raise RuntimeError ("cannot use
    # unpack() on <cdata 'char[]' buffer len 0 ...>"): a valid message refused, and not with
    # an exception naming the argument. (Also on 92f73cb: pack() did not change.)
    assert queue.send_many(batch) == 2
    assert drain(queue) == [b"a", b""]


class _PosingArray(array.array):  # type: ignore[type-arg]
    """An array of ints that says its __class__ is bytes: isinstance(x, bytes) believes it."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return bytes


def test_send_many_cuts_a_buffer_posing_as_bytes_by_its_bytes(queue: SysVMQ) -> None:
    # isinstance() consults __class__, so the array passes as bytes (send_many's >4 path, and
    # message_arg in pack()) and len() counts its items (2), not its 8 bytes: texts cut in the
    # wrong places. Exotic, and also fails on 92f73cb (pack()/message_arg trusted isinstance).
    ints = _PosingArray("i", [1, 2])
    batch = [ints, b"a", b"b", b"c", b"d"]
    assert queue.send_many(batch) == 5
    assert drain(queue) == [array.array("i", [1, 2]).tobytes(), b"a", b"b", b"c", b"d"]
