"""Bad input to every public entry point: a clear error naming the argument, and the queue unchanged."""

import decimal
import math
from typing import Any, Callable, Tuple, Type

import pytest

import sysvmq
from sysvmq import SysVMQ

MSGMAX = sysvmq.limits().msgmax
BIG = 2**63
STRIDED = memoryview(bytearray(16)).cast("B", (4, 4))[::2]

Case = Tuple[Callable[[SysVMQ], Any], Type[BaseException], str]

CASES = {
    # constructors
    "SysVMQ: key str": (lambda q: SysVMQ("0x1"), TypeError, "key must be an int"),
    "SysVMQ: key float": (lambda q: SysVMQ(1.0), TypeError, "key must be an int"),
    "SysVMQ: key bool": (lambda q: SysVMQ(True), TypeError, "key must be an int"),
    "SysVMQ: key above 32 bits": (lambda q: SysVMQ(2**32), ValueError, "key 4294967296 is out of range"),
    "SysVMQ: key below -2**31": (lambda q: SysVMQ(-(2**31) - 1), ValueError, "out of range"),
    "SysVMQ: buffer_size negative": (
        lambda q: SysVMQ.private(buffer_size=-1),
        ValueError,
        "buffer_size must not be negative",
    ),
    "SysVMQ: buffer_size above msgmax": (
        lambda q: SysVMQ.private(buffer_size=MSGMAX + 1),
        ValueError,
        r"kernel\.msgmax",
    ),
    "SysVMQ: buffer_size str": (lambda q: SysVMQ.private(buffer_size="8"), TypeError, "buffer_size must be an int"),
    "SysVMQ: msgget flag unknown": (lambda q: SysVMQ(0, flags=sysvmq.IPC_NOWAIT), ValueError, "unknown flag bits"),
    "SysVMQ: msgget flags negative": (lambda q: SysVMQ(0, flags=-1), ValueError, "unknown flag bits"),
    "create: mode too big": (lambda q: SysVMQ.create(1, mode=0o1000), ValueError, "mode"),
    "private: mode negative": (lambda q: SysVMQ.private(mode=-1), ValueError, "mode"),
    "create: private": (lambda q: SysVMQ.create(sysvmq.IPC_PRIVATE), ValueError, "IPC_PRIVATE.*use private"),
    "open: private": (lambda q: SysVMQ.open(sysvmq.IPC_PRIVATE), ValueError, "IPC_PRIVATE"),
    "attach: negative": (lambda q: SysVMQ.attach(-1), ValueError, "msqid must be"),
    "attach: above int": (lambda q: SysVMQ.attach(2**31), ValueError, "msqid must be"),
    "attach: str": (lambda q: SysVMQ.attach("1"), TypeError, "msqid must be an int"),
    # send
    "send: int": (lambda q: q.send(42), TypeError, "message must be bytes"),
    "send: None": (lambda q: q.send(None), TypeError, "message must be bytes"),
    "send: list": (lambda q: q.send([b"a"]), TypeError, "message must be bytes"),
    "send: strided": (lambda q: q.send(STRIDED), TypeError, "C-contiguous"),
    "send: type 0": (lambda q: q.send(b"x", 0), ValueError, "type must be 1"),
    "send: type negative": (lambda q: q.send(b"x", -1), ValueError, "type must be 1"),
    "send: type beyond long": (lambda q: q.send(b"x", BIG), ValueError, "type must be 1"),
    "send: type str": (lambda q: q.send(b"x", "1"), TypeError, "type must be an int"),
    "send: type float": (lambda q: q.send(b"x", 1.0), TypeError, "type must be an int"),
    "send: type bool": (lambda q: q.send(b"x", True), TypeError, "type must be an int"),
    "send: type Decimal": (lambda q: q.send(b"x", decimal.Decimal(1)), TypeError, "type must be an int"),
    "send: flags bool": (lambda q: q.send(b"x", 1, False), TypeError, "flags must be an int"),
    "send: flags float": (lambda q: q.send(b"x", 1, 0.0), TypeError, "flags must be an int"),
    "send: flags negative": (
        lambda q: q.send(b"x", 1, -(2**63) - 1),
        ValueError,
        r"flags for send\(\) .* not negative",
    ),
    "send: flag unknown": (lambda q: q.send(b"x", 1, sysvmq.MSG_NOERROR), ValueError, "unknown flag bits"),
    "send: timeout negative": (lambda q: q.send(b"x", timeout=-1), ValueError, "timeout must be a non-negative"),
    "send: timeout nan": (lambda q: q.send(b"x", timeout=math.nan), ValueError, "timeout must be a non-negative"),
    "send: timeout str": (lambda q: q.send(b"x", timeout="1"), TypeError, "timeout must be a number"),
    "send: timeout with block=False": (
        lambda q: q.send(b"x", block=False, timeout=1),
        ValueError,
        "cannot be combined",
    ),
    "send: timeout with IPC_NOWAIT": (lambda q: q.send(b"x", 1, sysvmq.IPC_NOWAIT, timeout=1), ValueError, "cannot be"),
    "send: above msgmax": (lambda q: q.send(b"x" * (MSGMAX + 1)), sysvmq.MessageTooLarge, r"kernel\.msgmax"),
    # receive family
    "receive: type beyond long": (lambda q: q.receive(BIG), ValueError, "type must fit a C long"),
    "receive: type str": (lambda q: q.receive("0"), TypeError, "type must be an int"),
    "receive: type bool": (lambda q: q.receive(False), TypeError, "type must be an int"),
    "receive: flags bool": (lambda q: q.receive(0, False), TypeError, "flags must be an int"),
    "receive: flags negative": (
        lambda q: q.receive(0, -(2**63) - 1),
        ValueError,
        r"flags for receive\(\) .* not negative",
    ),
    "receive_message: type float": (lambda q: q.receive_message(0.0), TypeError, "type must be an int"),
    "receive_into: flags float": (lambda q: q.receive_into(bytearray(4), 0, 0.0), TypeError, "flags must be an int"),
    "receive: MSG_COPY": (lambda q: q.receive(0, sysvmq.MSG_COPY), ValueError, "peek"),
    "receive: flag unknown": (lambda q: q.receive(0, sysvmq.IPC_CREAT), ValueError, "unknown flag bits"),
    "receive: timeout negative": (lambda q: q.receive(timeout=-0.5), ValueError, "timeout"),
    "receive: timeout nan": (lambda q: q.receive(timeout=math.nan), ValueError, "timeout"),
    "receive: timeout with block=False": (lambda q: q.receive(block=False, timeout=0), ValueError, "cannot be"),
    "receive_message: type beyond long": (lambda q: q.receive_message(-BIG - 1), ValueError, "type must fit"),
    "receive_into: bytes": (lambda q: q.receive_into(b"ro"), TypeError, "writable"),
    "receive_into: read-only view": (lambda q: q.receive_into(memoryview(b"ro")), TypeError, "read-only"),
    "receive_into: strided": (lambda q: q.receive_into(STRIDED), TypeError, "C-contiguous"),
    "receive_into: str": (lambda q: q.receive_into("str"), TypeError, "writable"),
    "receive_into: type beyond long": (lambda q: q.receive_into(bytearray(4), BIG), ValueError, "type must fit"),
    "peek: negative": (lambda q: q.peek(-1), ValueError, "index must be"),
    "peek: beyond long": (lambda q: q.peek(BIG), ValueError, "index must be"),
    "peek: str": (lambda q: q.peek("0"), TypeError, "index must be an int"),
    # update
    "update: nothing": (lambda q: q.update(), ValueError, "at least one"),
    "update: max_size 0": (lambda q: q.update(max_size=0), ValueError, "max_size must be 1"),
    "update: max_size negative": (lambda q: q.update(max_size=-1), ValueError, "max_size must be 1"),
    "update: max_size huge": (lambda q: q.update(max_size=2**64), ValueError, "max_size must be 1"),
    "update: max_size str": (lambda q: q.update(max_size="1"), TypeError, "max_size must be an int"),
    "update: mode": (lambda q: q.update(mode=0o1000), ValueError, "mode"),
    "update: uid negative": (lambda q: q.update(uid=-1), ValueError, "uid must be"),
    "update: gid huge": (lambda q: q.update(gid=2**32), ValueError, "gid must be"),
    "update: uid str": (lambda q: q.update(uid="0"), TypeError, "uid must be an int"),
    # batches
    "send_many: iterator": (lambda q: q.send_many(iter([b"a"])), TypeError, "sequence"),
    "send_many: bytes": (lambda q: q.send_many(b"ab"), TypeError, "sequence"),
    "send_many: bad item": (lambda q: q.send_many([b"a", 1]), TypeError, r"messages\[1\]"),
    "send_many: type 0": (lambda q: q.send_many([b"a"], 0), ValueError, "type must be 1"),
    "send_many: above msgmax": (lambda q: q.send_many([b"x" * (MSGMAX + 1)]), sysvmq.MessageTooLarge, "msgmax"),
    "send_many: lengths short": (lambda q: q.send_many(b"abc", lengths=[1, 1]), ValueError, "add up to 2 bytes"),
    "send_many: lengths negative": (lambda q: q.send_many(b"abc", lengths=[4, -1]), TypeError, "lengths must be ints"),
    "send_many: lengths str": (lambda q: q.send_many(b"abc", lengths="3"), TypeError, "sequence of ints"),
    "send_many: lengths iterator": (lambda q: q.send_many(b"abc", lengths=iter([3])), TypeError, "sequence of ints"),
    "send_many: lengths dict": (lambda q: q.send_many(b"abc", lengths={3: 0}), TypeError, "sequence of ints"),
    "send_many: lengths, str": (lambda q: q.send_many("abc", lengths=[3]), TypeError, "one bytes-like object"),
    "send_many: lengths, list": (lambda q: q.send_many([b"a"], lengths=[1]), TypeError, "bytes-like"),
    "send_many: timeout nan": (lambda q: q.send_many([b"a"], timeout=math.nan), ValueError, "timeout"),
    "receive_many: 0": (lambda q: q.receive_many(0), ValueError, "max_count must be at least 1"),
    "receive_many: str": (lambda q: q.receive_many("1"), TypeError, "max_count must be an int"),
    "receive_many: type beyond long": (lambda q: q.receive_many(1, BIG), ValueError, "type must fit"),
    "receive_many: timeout with block=False": (
        lambda q: q.receive_many(1, block=False, timeout=1),
        ValueError,
        "cannot",
    ),
    "receive_many_messages: negative": (lambda q: q.receive_many_messages(-3), ValueError, "max_count"),
    # module functions
    "ftok: proj_id 0": (lambda q: sysvmq.ftok(".", 0), ValueError, r"proj_id must be 1\.\.255"),
    "ftok: proj_id 256": (lambda q: sysvmq.ftok(".", 256), ValueError, r"proj_id must be 1\.\.255"),
    "ftok: proj_id str": (lambda q: sysvmq.ftok(".", "1"), TypeError, "proj_id must be an int"),
    "ftok: path int": (lambda q: sysvmq.ftok(42), TypeError, "str, bytes or os.PathLike"),
    "ftok: path None": (lambda q: sysvmq.ftok(None), TypeError, "path must be a str, bytes or os.PathLike"),
    "ftok: path with NUL": (lambda q: sysvmq.ftok("/etc\0/passwd"), ValueError, "embedded null byte"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_and_changes_nothing(queue: SysVMQ, name: str) -> None:
    queue.send(b"first", 3)
    queue.send(b"second", 4)
    before = (queue.stats(), queue.peek(0), queue.peek(1))
    call, error, pattern = CASES[name]
    with pytest.raises(error, match=pattern):
        call(queue)
    assert (queue.stats(), queue.peek(0), queue.peek(1)) == before


def test_every_entry_point_with_arguments_has_cases() -> None:
    public = {n for n in dir(SysVMQ) if not n.startswith("_") and callable(getattr(SysVMQ, n))}
    entries = public - {"stats", "destroy"} | {"SysVMQ", "ftok"}  # stats and destroy take no arguments
    assert entries == {name.split(":")[0] for name in CASES}
