"""Floors that are not APIs: what any Python binding over sysvmq's C helpers pays, as a baseline.

They reach C through the binding module only (``sysvmq._ffi``), as sysvmq's
facade does, with call states of their own.
"""

import array
import platform
import struct
from typing import Any, List, Optional, Sequence, Tuple

import sysvmq
from sysvmq._ffi import HEADROOM, ffi, lib

_c_send, _c_rx, _c_rx_into = lib.sysvmq_send, lib.sysvmq_rx, lib.sysvmq_rx_into
_c_send_many, _c_receive_many, _c_again = lib.sysvmq_send_many, lib.sysvmq_receive_many, lib.sysvmq_again
_from_buffer, _release, _string, _unpack_from = ffi.from_buffer, ffi.release, ffi.string, struct.unpack_from
_CHARS, _SIZES = ffi.typeof("char[]"), ffi.typeof("size_t[]")
_PYPY = platform.python_implementation() == "PyPy"
_ONE_BYTES, _LONG_SIZE = struct.pack("l", 1), ffi.sizeof("long")  # type 1 in C's long, between texts
_SIZE_T = next(code for code in "LQI" if array.array(code).itemsize == ffi.sizeof("size_t"))


def call_state(q: sysvmq.SysVMQ) -> Tuple[Any, Any]:
    """A ``struct sysvmq_call`` for q with room for msgmax, and its text as a buffer."""
    room = sysvmq.limits().msgmax
    c = ffi.new("struct sysvmq_call *", {"msqid": q.id, "maxlen": q.buffer_size, "room": room, "mtext": room})
    return c, ffi.buffer(c.mtext, room)


class SignatureFloor:
    """Not an API: sysvmq's send, receive and receive_into signatures over the bare C helpers.

    No checks, no pool of call states, no error handling: what calling a
    Python method with these keyword-only options costs on top of ``cffi_floor``.
    """

    __slots__ = ("_c", "_text")

    def __init__(self, q: sysvmq.SysVMQ) -> None:
        self._c, self._text = call_state(q)

    def send(
        self, message: bytes, type: int = 1, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None
    ) -> None:
        # One msgsnd(IPC_NOWAIT); where the queue is full (a producer ahead of its consumer in
        # another process), the same send again, blocking, as send(block=True) waits.
        if _c_send(self._c, type, message, len(message)) < 0:
            _c_again(self._c, 0)

    def receive(
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> bytes:
        data: bytes = self._text[0 : _c_rx(self._c)]
        return data

    def receive_into(
        self,
        buffer: bytearray,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> Tuple[int, int]:
        # The caller's buffer must be borrowed (and given back) for C to write into it.
        dest = _from_buffer(_CHARS, buffer, True)
        n = _c_rx_into(self._c, dest, len(buffer), 0)
        _release(dest)
        return n, self._c.mtype


class BatchFloor:
    """Not an API: the least a batch call over a list of bytes does in Python.

    Join the texts with the type between them (msgsnd then reads each text
    after the first where the join put it, behind its type), read each one's
    length into an array C can read (one len() per message: Python offers
    nothing cheaper), one crossing to send them all and one to take them back,
    and cut the result into bytes with one struct call. No checks, no pool, no
    error handling.
    """

    __slots__ = ("_c", "_view", "_fmt", "_keep")

    def __init__(self, q: sysvmq.SysVMQ, count: int) -> None:
        self._c, _ = call_state(q)
        room = max(q.buffer_size, min(count * q.buffer_size, 1 << 20))
        out = ffi.new("char[]", HEADROOM + room)
        texts = out + HEADROOM
        # CPython cuts the texts apart with one struct call and a format C writes; PyPy's JIT does
        # better with a loop over the lengths (it cannot specialise a format it sees once).
        self._fmt = fmt = ffi.NULL if _PYPY else ffi.new("char[]", count * lib.SYSVMQ_FMT_ITEM + 1)
        sizes, types = ffi.new("size_t[]", count), ffi.new("long[]", count)
        self._c.dest, self._c.size, self._c.sizes, self._c.types, self._c.fmt = texts, room, sizes, types, fmt
        self._view = ffi.buffer(texts, room)
        self._keep = (out, sizes, types)

    def send_many(self, messages: List[bytes]) -> None:
        lens = _from_buffer(_SIZES, array.array(_SIZE_T, map(len, messages)))
        _c_send_many(self._c, 1, _ONE_BYTES.join(messages), lens, len(messages), _LONG_SIZE, 0)

    def receive_many(self, count: int) -> Sequence[bytes]:
        n = _c_receive_many(self._c, 0, 0, count)
        if _PYPY:
            sizes, view = self._c.sizes, self._view
            texts = []
            at = 0
            for i in range(n):
                end = at + sizes[i]
                texts.append(view[at:end])
                at = end
            return texts
        cut: Tuple[bytes, ...] = _unpack_from(_string(self._fmt), self._view)
        return cut


def cffi_floor_loop(q: sysvmq.SysVMQ, message: bytes, loop: int) -> Any:
    """Not an API: the two C helpers send() and receive() end in, called bare in a loop."""
    c, text = call_state(q)
    size = len(message)

    def run() -> None:
        send, receive = _c_send, _c_rx
        for _ in range(loop):
            send(c, 1, message, size)
            text[0 : receive(c)]

    return run
