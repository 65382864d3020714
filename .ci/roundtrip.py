"""A short loop over every call shape of the C boundary, for valgrind's memcheck (see .ci/memcheck).

Each cycle sends and takes messages of lengths 0 to msgmax at every
alignment, through every send and receive path: the fast paths and the
general ones, batches, truncation, receive_into with buffers shorter and
longer than the message, peek, and the errors that leave a message queued
(E2BIG), find nothing (ENOMSG) or no room (EAGAIN). Every result is checked,
so the loop fails on a wrong byte as well as memcheck on a wrong access.

    python .ci/roundtrip.py [cycles]
"""

import sys

import sysvmq
from sysvmq import Message, SysVMQ

MSGMAX = sysvmq.limits().msgmax


def text(i: int, n: int) -> bytes:
    return bytes((i + j) % 251 for j in range(n))


def cycle(q: SysVMQ, small: SysVMQ, i: int) -> None:
    n = (i * 37) % (MSGMAX + 1)
    data = text(i, n)
    # The fast paths (bytes, blocking, nothing to wait for) and the general ones.
    q.send(data, 1 + i % 5)
    assert q.receive() == data
    q.send(bytearray(data), 2, block=False)
    assert q.receive_message(2, block=False) == Message(data, 2)
    q.send(memoryview(data), 3, timeout=0)
    assert q.receive_message(-3, timeout=0) == Message(data, 3)
    chars = data[: n // 2].decode("latin-1")  # str goes as UTF-8: up to twice as many bytes
    q.send(chars, 4)
    assert q.receive(5, sysvmq.MSG_EXCEPT) == chars.encode()
    # receive_into: a buffer longer than the message, then one shorter (truncated, or refused and kept).
    buf = bytearray(MSGMAX + 16)
    q.send(data, 6)
    assert q.receive_into(buf) == (n, 6) and buf[:n] == data
    if n:
        q.send(data, 7)
        short = memoryview(bytearray(n - 1))
        try:
            q.receive_into(short, block=False)
            raise AssertionError("a message longer than the buffer was taken")
        except sysvmq.MessageTooLarge:
            pass
        assert q.receive_into(short, truncate=True, block=False) == (n - 1, 7) and bytes(short) == data[:-1]
    # The small handle: E2BIG leaves the message queued; truncate takes its first 100 bytes.
    q.send(data, 8)
    if n > 100:
        try:
            small.receive(block=False)
            raise AssertionError("a message longer than buffer_size was taken")
        except sysvmq.MessageTooLarge:
            pass
        assert small.peek(truncate=True) == Message(data[:100], 8)
    assert small.receive(truncate=True, block=False) == data[:100]
    # Batches of every length 0..40, so the in-place layout meets every alignment.
    batch = [text(i + k, (i + k) % 41) for k in range(4 + i % 17)]
    assert q.send_many(batch, 9) == len(batch)
    assert q.peek(len(batch) - 1) == Message(batch[-1], 9)
    got = q.receive_many_messages(len(batch) + 1, block=False)
    assert got == [Message(b, 9) for b in batch]
    assert small.send_many(batch, 10, timeout=0) == len(batch)
    assert small.receive_many(3, 10, truncate=True) == [b[:100] for b in batch[:3]]
    assert q.receive_many(len(batch), -10, timeout=0) == batch[3:]
    # Nothing there, and no room.
    for call in (lambda: q.receive(block=False), lambda: q.receive_many(5, block=False), lambda: q.peek(0)):
        try:
            call()
            raise AssertionError("an empty queue gave a message")
        except sysvmq.QueueEmpty:
            pass
    q.update(max_size=100)
    assert q.send_many([b"x" * 40] * 3, block=False) == 2
    try:
        q.send(b"y" * 40, block=False)
        raise AssertionError("a full queue took a message")
    except sysvmq.QueueFull:
        pass
    assert q.receive_many(5, block=False) == [b"x" * 40] * 2
    q.update(max_size=2 * MSGMAX)


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    q = SysVMQ.private()
    try:
        q.update(max_size=2 * MSGMAX)
        small = SysVMQ.attach(q.id, buffer_size=100)
        for i in range(cycles):
            cycle(q, small, i)
        assert q.stats().count == 0
    finally:
        q.destroy()
    print(f"roundtrip: {cycles} cycles, every result as expected")


if __name__ == "__main__":
    main()
