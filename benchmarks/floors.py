"""Floors that are not APIs: what any Python binding over these C helpers pays, as a baseline."""

from typing import Optional

import sysvmq
from sysvmq import _queue

# The C helpers, as sysvmq's methods reach them: through module globals.
_c_send, _c_rx, _unpack = _queue._c_send, _queue._c_rx, _queue._unpack


class SignatureFloor:
    """Not an API: sysvmq's send and receive signatures over the bare C helpers.

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
