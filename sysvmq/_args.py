"""Argument checks: a clear TypeError or ValueError naming the argument and the limit, before any system call.

The hot paths of ``_queue`` test the common cases inline (an exact int, a
bytes message) and call these for everything else, so that whatever the
fast path lets through is checked, and worded, here.
"""

import array
import collections.abc
import math
import numbers
import operator
import platform
from typing import Any, Optional, Sequence, Tuple

from ._ffi import (
    CHARS,
    HAS_MSG_COPY,
    ID_MAX,
    INT_MAX,
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    KEY_BITS,
    KEY_MASK,
    LONG_MAX,
    LONG_MIN,
    MSG_COPY,
    MSG_EXCEPT,
    MSG_NOERROR,
    ffi,
)

__all__ = [
    "PERMS",
    "SEND_FLAGS",
    "RECEIVE_FLAGS",
    "SIZE_T",
    "int_arg",
    "key_arg",
    "c_key",
    "msgget_flags_arg",
    "mode_arg",
    "buffer_size_arg",
    "msqid_arg",
    "send_type_arg",
    "receive_type_arg",
    "flags_arg",
    "timeout_arg",
    "max_count_arg",
    "index_arg",
    "proj_id_arg",
    "max_size_arg",
    "owner_arg",
    "messages_arg",
    "lengths_arg",
    "borrow",
    "message_arg",
    "pack",
    "release",
]

PERMS = 0o777
SEND_FLAGS = IPC_NOWAIT
RECEIVE_FLAGS = IPC_NOWAIT | MSG_NOERROR | MSG_EXCEPT
# The kernel passes msg_qbytes to IPC_SET through an int (ipc/msg.c,
# msgctl_down): a larger max_size would be kept as its low bits, 2**32 as 0.
MAX_SIZE_MAX = INT_MAX
# send_many's lengths go to C as an array of size_t, built by array.array in one pass.
SIZE_T = next(code for code in "LQI" if array.array(code).itemsize == ffi.sizeof("size_t"))
# CPython's from_buffer refuses a strided or read-only view itself; PyPy's must be told.
_CHECK_VIEWS = platform.python_implementation() != "CPython"
_CHARS = CHARS  # parsed once, in _ffi: from_buffer would parse the string on every call
_from_buffer = ffi.from_buffer
_release_buffer = ffi.release
_unpack = ffi.unpack


def int_arg(name: str, value: object) -> int:
    """An int, or anything with ``__index__`` but bool."""
    if type(value) is int:  # not __class__, which an object may fake
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    index: int = operator.index(value)  # type: ignore[arg-type]
    return index


def key_arg(key: object) -> int:
    """The key as the unsigned number ``ipcs`` shows."""
    k = int_arg("key", key)
    if not -(KEY_MASK >> 1) - 1 <= k <= KEY_MASK:
        raise ValueError(
            f"key {k} is out of range: a key is {KEY_BITS} bits, "
            f"0..{KEY_MASK:#x} or the negative int with the same bits"
        )
    return k & KEY_MASK


def c_key(ukey: int) -> int:
    """The unsigned key as the signed key_t C wants."""
    return ukey - (1 << KEY_BITS) if ukey >> (KEY_BITS - 1) else ukey


def msgget_flags_arg(flags: object) -> int:
    f = int_arg("flags", flags)
    allowed = IPC_CREAT | IPC_EXCL | PERMS
    if f & ~allowed or f < 0:
        raise ValueError(
            f"unknown flag bits {f & ~allowed:#o} for msgget; "
            "allowed: IPC_CREAT, IPC_EXCL and the permission bits 0o777"
        )
    return f


def mode_arg(mode: object) -> int:
    m = int_arg("mode", mode)
    if not 0 <= m <= PERMS:
        raise ValueError(f"mode {m:#o} is out of range: permission bits are 0..0o777")
    return m


def buffer_size_arg(buffer_size: object, msgmax: int) -> int:
    """The longest message a handle receives: ``msgmax`` unless given, and never more."""
    if buffer_size is None:
        return msgmax
    size = int_arg("buffer_size", buffer_size)
    if size < 0:
        raise ValueError(f"buffer_size must not be negative, not {size}")
    if size > msgmax:
        raise ValueError(
            f"buffer_size {size} exceeds kernel.msgmax ({msgmax}): no message can be longer; raise the sysctl first"
        )
    return size


def msqid_arg(msqid: object) -> int:
    qid = int_arg("msqid", msqid)
    if not 0 <= qid <= INT_MAX:
        raise ValueError(f"msqid must be 0..{INT_MAX}, not {qid}")
    return qid


def send_type_arg(mtype: object) -> int:
    t = int_arg("type", mtype)
    if not 0 < t <= LONG_MAX:
        raise ValueError(f"type must be 1..{LONG_MAX} (a positive C long) to send, not {t}")
    return t


def receive_type_arg(mtype: object) -> int:
    t = int_arg("type", mtype)
    if not LONG_MIN <= t <= LONG_MAX:
        raise ValueError(f"type must fit a C long ({LONG_MIN}..{LONG_MAX}), not {t}")
    return t


def flags_arg(flags: object, allowed: int, call: str) -> int:
    f = int_arg("flags", flags)
    if f < 0:
        raise ValueError(f"flags for {call}() must be a combination of the bits {allowed:#o}, not negative ({f})")
    if f & ~allowed:
        if call == "receive" and f & MSG_COPY and HAS_MSG_COPY:
            raise ValueError("MSG_COPY is not a receive flag: use peek() to copy a message")
        raise ValueError(f"unknown flag bits {f & ~allowed:#o} for {call}(); allowed: {allowed:#o}")
    return f


def timeout_arg(timeout: object, nowait: bool) -> Optional[float]:
    """Seconds to wait, or None to block without a deadline."""
    if timeout is None:
        return None
    if nowait:
        raise ValueError("timeout cannot be combined with block=False or IPC_NOWAIT")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int past float's range: as good as for ever, or a negative
        seconds = -math.inf if timeout < 0 else math.inf
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"timeout must be a non-negative number of seconds, not {timeout!r}")
    return None if math.isinf(seconds) else seconds


def max_count_arg(max_count: object) -> int:
    count = int_arg("max_count", max_count)
    if count < 1:
        raise ValueError(f"max_count must be at least 1, not {count}")
    return count


def index_arg(index: object) -> int:
    i = int_arg("index", index)
    if not 0 <= i <= LONG_MAX:
        raise ValueError(f"index must be 0..{LONG_MAX}, not {i}")
    return i


def proj_id_arg(proj_id: object) -> int:
    p = int_arg("proj_id", proj_id)
    if not 1 <= p <= 255:
        raise ValueError(f"proj_id must be 1..255 (ftok uses its low 8 bits), not {p}")
    return p


def max_size_arg(max_size: object) -> int:
    size = int_arg("max_size", max_size)
    if not 1 <= size <= MAX_SIZE_MAX:
        raise ValueError(
            f"max_size must be 1..{MAX_SIZE_MAX} bytes (a queue of 0 holds nothing, and the kernel keeps "
            f"no more than an int), not {size}"
        )
    return size


def owner_arg(name: str, value: object) -> int:
    v = int_arg(name, value)
    if not 0 <= v <= ID_MAX:
        raise ValueError(f"{name} must be 0..{ID_MAX}, not {v}")
    return v


def messages_arg(messages: object) -> None:
    """TypeError unless ``messages`` is a sequence that still holds what was not sent."""
    if isinstance(messages, (str, bytes, bytearray, memoryview)) or not isinstance(messages, collections.abc.Sequence):
        raise TypeError(f"messages must be a sequence (list or tuple) of messages, not {messages.__class__.__name__}")


def lengths_arg(lengths: object, size: int) -> "array.array[int]":
    """send_many's ``lengths`` as an array of size_t: ints >= 0 that add up to ``size``, the buffer's bytes."""
    # A sequence, not any iterable: an iterator would be spent by the time an error needs it,
    # and a dict or set has no order that says which text is which.
    # (PyPy's array.array is no registered Sequence: named here.)
    if lengths.__class__ is list:  # the usual case, before the slower ABC check
        pass
    elif isinstance(lengths, (str, bytes)) or not isinstance(lengths, (collections.abc.Sequence, array.array)):
        raise TypeError(f"lengths must be a sequence of ints (list, tuple, array), not {type(lengths).__name__}")
    try:
        lens = array.array(SIZE_T, lengths)
    except (TypeError, OverflowError):
        raise TypeError("lengths must be ints from 0 up (the bytes of each text)") from None
    total = sum(lens)
    if total != size:
        raise ValueError(f"lengths add up to {total} bytes, but the buffer holds {size}")
    return lens


def borrow(obj: object, name: str, writable: bool) -> Any:
    """A cdata over obj's memory, no copy; TypeError unless it is a C-contiguous (writable) buffer."""
    what = "a writable bytes-like object" if writable else "bytes, a bytes-like object or str"
    try:
        if _CHECK_VIEWS:
            with memoryview(obj) as view:  # type: ignore[arg-type]
                if not view.c_contiguous or (writable and view.readonly):
                    raise BufferError
        return _from_buffer(_CHARS, obj, writable)
    except TypeError:
        raise TypeError(f"{name} must be {what}, not {type(obj).__name__}") from None
    except BufferError:
        with memoryview(obj) as view:  # type: ignore[arg-type]
            kind = "read-only" if writable and view.readonly else "strided (not C-contiguous)"
        raise TypeError(f"{name} must be {what}, not a {kind} {type(obj).__name__}") from None


def message_arg(message: object, name: str = "message") -> Any:
    """bytes stay as they are; str becomes UTF-8; other buffers are borrowed, not copied.

    Told apart by their real type, not ``__class__``, which a class may fake. A
    subclass of bytes becomes plain bytes: its own ``len()`` need not count its
    bytes, and C would read as many as it said.
    """
    cls = type(message)
    if cls is bytes:
        return message
    if issubclass(cls, str):
        try:
            return str.encode(message, "utf-8")  # type: ignore[arg-type]
        except UnicodeEncodeError as exc:  # a lone surrogate: say which message
            raise UnicodeEncodeError(exc.encoding, exc.object, exc.start, exc.end, f"{name}: {exc.reason}") from None
    if issubclass(cls, bytes):
        return b"".join((message,))  # type: ignore[arg-type]
    return borrow(message, name, writable=False)


def pack(messages: Sequence[Any]) -> Tuple[bytes, "array.array[int]"]:
    """The messages end to end in one bytes, and each one's length; TypeError names a bad one.

    send_many's fast paths take a list of bytes as it is (len() counts a bytes
    object's bytes, but another buffer's items: array('i') would differ); this
    is for every other sequence, and for lists that hold anything but bytes.
    """
    texts = []
    for i, m in enumerate(messages):
        data = message_arg(m, f"messages[{i}]")
        n = len(data)  # bytes, or a borrowed char[]: its size in bytes
        texts.append(data if type(data) is bytes else _unpack(data, n) if n else b"")  # PyPy cannot unpack 0
        release(data)
    return b"".join(texts), array.array(SIZE_T, map(len, texts))


def release(data: Any) -> None:
    # A borrowed buffer pins its object (a bytearray cannot resize) until
    # released; on PyPy the garbage collector would release it much later.
    if not isinstance(data, bytes):
        _release_buffer(data)
