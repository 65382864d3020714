"""Floors that are not APIs: what any Python binding over these C helpers pays, as a baseline."""

import array
from typing import List, Optional, Tuple

import sysvmq
from sysvmq import _queue

# The C helpers, as sysvmq's methods reach them: through module globals.
_c_send, _c_rx, _unpack = _queue._c_send, _queue._c_rx, _queue._unpack
_c_send_many, _c_receive_many, _from_buffer = _queue._c_send_many, _queue._c_receive_many, _queue._from_buffer
_SIZES = _queue._SIZES
_unpack_from, _string, _SIZE_T = _queue._unpack_from, _queue._string, _queue._SIZE_T
_c_rx_into, _release, _CHARS = _queue._c_rx_into, _queue._release_buffer, _queue._CHARS


class SignatureFloor:
    """Not an API: sysvmq's send, receive and receive_into signatures over the bare C helpers.

    No checks, no buffer pool, no error handling: what calling a Python method
    with these keyword-only options costs on top of ``cffi_floor``.
    """

    __slots__ = ("_id", "_rx", "_text")

    def __init__(self, q: sysvmq.SysVMQ) -> None:
        self._id = q.id
        self._rx, self._text, _ = q._new_rx(0)

    def send(
        self, message: bytes, type: int = 1, flags: int = 0, *, block: bool = True, timeout: Optional[float] = None
    ) -> None:
        _c_send(self._id, type, message, len(message), 0)  # one blocking msgsnd

    def receive(
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> bytes:
        data: bytes = _unpack(self._text, _c_rx(self._rx))
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
        n = _c_rx_into(self._rx, dest, len(buffer), 0)
        _release(dest)
        return n, self._rx.mtype


class BatchFloor:
    """Not an API: the least a batch call over a list of bytes does in Python.

    Join the texts, read each one's length into an array C can read (one len()
    per message: Python offers nothing cheaper), one crossing to send them all
    and one to take them back, and cut the result into bytes with one struct
    call. No checks, no pool, no error handling.
    """

    __slots__ = ("_id", "_batch", "_view", "_fmt", "_keep")

    def __init__(self, q: sysvmq.SysVMQ, count: int) -> None:
        self._id = q.id
        self._batch, self._view, self._fmt, _, self._keep = q._new_batch(count)

    def send_many(self, messages: List[bytes]) -> None:
        lens = _from_buffer(_SIZES, array.array(_SIZE_T, map(len, messages)))
        _c_send_many(self._id, 1, b"".join(messages), lens, len(messages), 0, 0)

    def receive_many(self, count: int) -> Tuple[bytes, ...]:
        _c_receive_many(self._batch, 0, 0, count)
        texts: Tuple[bytes, ...] = _unpack_from(_string(self._fmt), self._view)
        return texts
