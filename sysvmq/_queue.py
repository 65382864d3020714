"""SysVMQ, the facade over msgget/msgsnd/msgrcv/msgctl, and the module functions.

This is the only module that imports the compiled binding. Every call site
follows one pattern: call, read ``ffi.errno`` at once (the next C call in this
thread overwrites it), retry on EINTR (PEP 475: the interpreter runs signal
handlers before the retry, and one that raises ends the call), else raise
from the table in ``_errors``.
"""

import array
import collections.abc
import errno
import math
import numbers
import operator
import os
import platform
import struct
import time
from typing import Any, Deque, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from ._errors import (
    MessageTooLarge,
    QueueEmpty,
    QueueFull,
    QueueNotFound,
    QueuePermissionError,
    QueueRemoved,
    SysVMQError,
    UnsupportedOperation,
    error_from_errno,
)
from ._stats import (
    Limits,
    Message,
    QueueStats,
    Usage,
    limits_from_msginfo,
    stats_from_msqid_ds,
    usage_from_msginfo,
)
from ._sysvmq_cffi import ffi, lib

__all__ = ["SysVMQ", "ftok", "limits", "usage", "queues"]

IPC_PRIVATE: int = lib.IPC_PRIVATE
IPC_CREAT: int = lib.IPC_CREAT
IPC_EXCL: int = lib.IPC_EXCL
IPC_NOWAIT: int = lib.IPC_NOWAIT
IPC_RMID: int = lib.IPC_RMID
IPC_SET: int = lib.IPC_SET
IPC_STAT: int = lib.IPC_STAT
MSG_NOERROR: int = lib.MSG_NOERROR
# Linux only; 0 elsewhere, where the matching HAS_ flag is False.
IPC_INFO: int = lib.IPC_INFO
MSG_INFO: int = lib.MSG_INFO
MSG_STAT: int = lib.MSG_STAT
MSG_STAT_ANY: int = lib.MSG_STAT_ANY
MSG_EXCEPT: int = lib.MSG_EXCEPT
MSG_COPY: int = lib.MSG_COPY

HAS_IPC_INFO: bool = bool(lib.HAS_IPC_INFO)
HAS_MSG_INFO: bool = bool(lib.HAS_MSG_INFO)
HAS_MSG_STAT: bool = bool(lib.HAS_MSG_STAT)
HAS_MSG_STAT_ANY: bool = bool(lib.HAS_MSG_STAT_ANY)
HAS_MSG_EXCEPT: bool = bool(lib.HAS_MSG_EXCEPT)
HAS_MSG_COPY: bool = bool(lib.HAS_MSG_COPY)

_LONG_MAX: int = (1 << (8 * ffi.sizeof("long") - 1)) - 1
_LONG_MIN = -_LONG_MAX - 1
_ULONG_MAX: int = (1 << (8 * ffi.sizeof("unsigned long"))) - 1
_INT_MAX: int = (1 << (8 * ffi.sizeof("int") - 1)) - 1
_ID_MAX: int = (1 << (8 * ffi.sizeof("uid_t"))) - 2  # (uid_t)-1 means "no change" to the kernel
_KEY_BITS: int = 8 * ffi.sizeof("key_t")
_KEY_MASK = (1 << _KEY_BITS) - 1
_KEY_SIGN = 1 << (_KEY_BITS - 1)
_PERMS = 0o777
_DEFAULT_MODE = 0o600
# The fast paths test arguments by identity: every int 0 or 1 is this object
# on CPython, and ints compare by value under ``is`` on PyPy, while 0.0,
# False and int subclasses fail the test and take the general path.
_ZERO = 0
_ONE = 1
_EAGAIN = errno.EAGAIN
_SEND_FLAGS = IPC_NOWAIT
_RECEIVE_FLAGS = IPC_NOWAIT | MSG_NOERROR | MSG_EXCEPT
# Without IPC_INFO (macOS, the BSDs) the default buffer is the historical msgmax.
_FALLBACK_MSGMAX = 8192

# SysV has no timed msgsnd/msgrcv. A timed call makes non-blocking tries with
# sleeps between, doubling from the first to the last: a message that arrives
# is taken within about _POLL_MAX, and a wait costs ~1000 wake-ups a second.
_POLL_FIRST = 50e-6
_POLL_MAX = 1e-3
# How long a reading of max_size (SysVMQ._send_full) or msgmax (send_many) is trusted.
_READING_TTL = 1.0

_new = ffi.new_allocator(should_clear_after_alloc=False)
# The hot path reaches C through module globals: cheaper than attributes of lib.
_c_send = lib.sysvmq_send
_c_rx = lib.sysvmq_rx
_c_rx_type = lib.sysvmq_rx_type
_c_rx_into = lib.sysvmq_rx_into
_c_receive = lib.sysvmq_receive
_c_send_many = lib.sysvmq_send_many
_c_total = lib.sysvmq_total
_c_receive_many = lib.sysvmq_receive_many
_unpack = ffi.unpack
_string = ffi.string
_unpack_from = struct.unpack_from
_from_buffer = ffi.from_buffer
_release_buffer = ffi.release
# Parsed once: from_buffer would look the string up on every call.
_CHARS = ffi.typeof("char[]")
_SIZES = ffi.typeof("size_t[]")
_NULL = ffi.NULL
_monotonic = time.monotonic
_deque = collections.deque
_sleep = time.sleep
# send_many's lengths go to C as an array of size_t, built by array.array in one pass.
_SIZE_T = next(code for code in "LQI" if array.array(code).itemsize == ffi.sizeof("size_t"))
# CPython's from_buffer refuses a strided or read-only view itself; PyPy's must be told.
_CHECK_VIEWS = platform.python_implementation() != "CPython"

_Q = TypeVar("_Q", bound="SysVMQ")
Buffer = Any  # anything with the buffer protocol; typing gains a name for it in 3.12


# A receiver: (the struct sysvmq_rx msgrcv(2) fills, its text, the text's room).
_Rx = Tuple[Any, Any, int]

# What receive_many fills in one crossing: (the struct sysvmq_batch, a view of
# its texts, its format, how many messages it holds, and what it points to).
_Batch = Tuple[Any, Any, Any, int, Tuple[Any, ...]]
_BATCH_COUNT = 256  # messages one crossing takes at most
_BATCH_BYTES = 1 << 20  # room for texts, at most (and at least one message)


class _Backoff:
    """The sleeps between the non-blocking tries of a timed call."""

    __slots__ = ("deadline", "delay")

    def __init__(self, timeout: float) -> None:
        self.deadline = _monotonic() + timeout
        self.delay = _POLL_FIRST

    def wait(self) -> bool:
        """Sleep before the next try; False once the deadline has passed.

        time.sleep retries on EINTR itself and lets a raising handler through.
        """
        remaining = self.deadline - _monotonic()
        if remaining <= 0:
            return False
        _sleep(min(self.delay, remaining))
        self.delay = min(self.delay * 2, _POLL_MAX)
        return True


# -- argument checks: clear errors before any syscall -------------------------


def _int_arg(name: str, value: object) -> int:
    if value.__class__ is int:
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    index: int = operator.index(value)  # type: ignore[arg-type]
    return index


def _key_arg(key: object) -> int:
    """The key as the unsigned 32-bit number ``ipcs`` shows."""
    k = _int_arg("key", key)
    if not -_KEY_SIGN <= k <= _KEY_MASK:
        raise ValueError(
            f"key {k} is out of range: a key is {_KEY_BITS} bits, "
            f"0..{_KEY_MASK:#x} or the negative int with the same bits"
        )
    return k & _KEY_MASK


def _c_key(ukey: int) -> int:
    return ukey - (1 << _KEY_BITS) if ukey & _KEY_SIGN else ukey


def _mode_arg(mode: object) -> int:
    m = _int_arg("mode", mode)
    if not 0 <= m <= _PERMS:
        raise ValueError(f"mode {m:#o} is out of range: permission bits are 0..0o777")
    return m


def _buffer_size_arg(buffer_size: object) -> int:
    msgmax = _msgmax()
    if buffer_size is None:
        return msgmax
    size = _int_arg("buffer_size", buffer_size)
    if size < 0:
        raise ValueError(f"buffer_size must not be negative, not {size}")
    if size > msgmax:
        raise ValueError(
            f"buffer_size {size} exceeds kernel.msgmax ({msgmax}): no message can be longer; raise the sysctl first"
        )
    return size


def _send_type_arg(mtype: object) -> int:
    t = _int_arg("type", mtype)
    if not 0 < t <= _LONG_MAX:
        raise ValueError(f"type must be 1..{_LONG_MAX} (a positive C long) to send, not {t}")
    return t


def _receive_type_arg(mtype: object) -> int:
    t = _int_arg("type", mtype)
    if not _LONG_MIN <= t <= _LONG_MAX:
        raise ValueError(f"type must fit a C long ({_LONG_MIN}..{_LONG_MAX}), not {t}")
    return t


def _flags_arg(flags: object, allowed: int, call: str) -> int:
    f = _int_arg("flags", flags)
    if f & ~allowed or f < 0:
        if call == "receive" and f & MSG_COPY and HAS_MSG_COPY:
            raise ValueError("MSG_COPY is not a receive flag: use peek() to copy a message")
        raise ValueError(f"unknown flag bits {f & ~allowed:#o} for {call}(); allowed: {allowed:#o}")
    return f


def _timeout_arg(timeout: object, nowait: bool) -> Optional[float]:
    """Seconds to wait, or None to block without a deadline."""
    if timeout is None:
        return None
    if nowait:
        raise ValueError("timeout cannot be combined with block=False or IPC_NOWAIT")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    seconds = float(timeout)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"timeout must be a non-negative number of seconds, not {timeout!r}")
    return None if math.isinf(seconds) else seconds


def _borrow(obj: object, name: str, writable: bool) -> Any:
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


def _message_arg(message: object, name: str = "message") -> Any:
    """bytes stay as they are; str becomes UTF-8; other buffers are borrowed, not copied."""
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, bytes):
        return message
    return _borrow(message, name, writable=False)


def _pack(messages: Sequence[Any]) -> Tuple[bytes, "array.array[int]"]:
    """The messages end to end in one bytes, and each one's length; TypeError names a bad one.

    send_many tries b"".join and len() first: when the lengths add up to the
    joined size, every message was bytes-like with one-byte items (len()
    counts items, so array('i') would differ) and this is not called.
    """
    texts = []
    for i, m in enumerate(messages):
        data = _message_arg(m, f"messages[{i}]")
        texts.append(data if isinstance(data, bytes) else _unpack(data, len(data)))
        _release(data)
    return b"".join(texts), array.array(_SIZE_T, map(len, texts))


def _release(data: Any) -> None:
    # A borrowed buffer pins its object (a bytearray cannot resize) until
    # released; on PyPy the garbage collector would release it much later.
    if not isinstance(data, bytes):
        _release_buffer(data)


# -- the kernel's view of itself ----------------------------------------------


def _msginfo(cmd: int, name: str, available: bool) -> Tuple[int, Any]:
    """msgctl(IPC_INFO or MSG_INFO): its result (the highest index in use) and the struct."""
    if not available:
        raise UnsupportedOperation(errno.ENOSYS, f"{name} is Linux-only")
    info = ffi.new("struct sysvmq_msginfo *")
    rc = lib.sysvmq_msginfo(cmd, info)
    if rc < 0:
        raise error_from_errno(ffi.errno, f"msgctl({name})")
    return rc, info


_msgmax_seen = (0, 0.0)  # (kernel.msgmax, when it was read): send_many checks each batch


def _msgmax_cached() -> int:
    """kernel.msgmax, read anew."""
    global _msgmax_seen
    _msgmax_seen = value, _ = _msgmax(), _monotonic()
    return value


def _msgmax() -> int:
    return limits().msgmax if HAS_IPC_INFO else _FALLBACK_MSGMAX


def _stats_of(msqid: int, ds: Any) -> QueueStats:
    return stats_from_msqid_ds(msqid, ds, lib.sysvmq_key(ds), lib.sysvmq_cbytes(ds))


def limits() -> Limits:
    """The kernel's limits on queues, from ``msgctl(IPC_INFO)``.

    Raises:
        UnsupportedOperation: the platform has no IPC_INFO (only Linux does).
    """
    return limits_from_msginfo(_msginfo(IPC_INFO, "IPC_INFO", HAS_IPC_INFO)[1])


def usage() -> Usage:
    """Queues, messages and bytes in use system-wide, from ``msgctl(MSG_INFO)``.

    Raises:
        UnsupportedOperation: the platform has no MSG_INFO (only Linux does).
    """
    return usage_from_msginfo(_msginfo(MSG_INFO, "MSG_INFO", HAS_MSG_INFO)[1])


def queues() -> List[QueueStats]:
    """Every queue the caller may see, in the order ``ipcs -q`` lists them.

    Uses MSG_STAT_ANY (Linux 4.17+), which lists queues the caller cannot
    read, and falls back to MSG_STAT, which lists only readable ones.

    Raises:
        UnsupportedOperation: the platform has no MSG_STAT (only Linux does).
    """
    max_index, info = _msginfo(MSG_INFO, "MSG_INFO", HAS_MSG_STAT)
    in_use = info.msgpool
    ds = ffi.new("struct msqid_ds *")
    commands = (MSG_STAT_ANY, MSG_STAT) if HAS_MSG_STAT_ANY else (MSG_STAT,)
    found: List[QueueStats] = []
    for cmd in commands:
        for index in range(max_index + 1):
            msqid = lib.msgctl(index, cmd, ds)
            if msqid >= 0:
                found.append(_stats_of(msqid, ds))
                continue
            err = ffi.errno
            # An unused index is EINVAL; a queue MSG_STAT may not read, EACCES.
            if err not in (errno.EINVAL, errno.EACCES, errno.EIDRM):
                raise error_from_errno(err, f"msgctl(index {index})")
        if found or not in_use:
            break
        # Queues exist but MSG_STAT_ANY saw none: a kernel older than 4.17.
    return found


def ftok(path: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"], proj_id: int = 1) -> int:
    """The key ``ftok(3)`` derives from an existing file and a project id.

    Args:
        path: an existing file; its inode and device make the key.
        proj_id: 1..255; ftok uses only the low 8 bits, and POSIX leaves 0 unspecified.

    Returns:
        The key, unsigned (0..2**32-1), like ``SysVMQ.key``.

    Raises:
        OSError: the path cannot be stat()ed (FileNotFoundError if missing).
    """
    p = _int_arg("proj_id", proj_id)
    if not 1 <= p <= 255:
        raise ValueError(f"proj_id must be 1..255 (ftok uses its low 8 bits), not {p}")
    raw = os.fsencode(path)
    key = ffi.new("long long *")
    if lib.sysvmq_ftok(raw, p, key) < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), os.fsdecode(raw))
    return int(key[0]) & _KEY_MASK


# -- the handle ---------------------------------------------------------------


class SysVMQ:
    """One handle on one kernel message queue.

    The handle is only the queue's id: it holds no OS resource, works in a
    forked child, pickles to another process, and may be used by many threads
    at once. Only ``destroy()`` removes the queue.

    Args:
        key: the queue's key, 0..2**32-1 (or the negative int with the same
            bits), or IPC_PRIVATE for a new queue no other key reaches.
        buffer_size: the longest message this handle receives; None means
            the kernel's current msgmax.
        flags: msgget(2) flags, IPC_CREAT and IPC_EXCL, or-ed with the
            permission bits. Creating with no permission bits gives 0o600.

    Raises:
        QueueNotFound: no queue has the key, and IPC_CREAT was not given.
        QueueExists: IPC_CREAT | IPC_EXCL, and a queue has the key.
        SysVMQError: any other failure of msgget(2), such as ENOSPC when
            kernel.msgmni queues exist.
    """

    __slots__ = ("_id", "_key", "_buffer_size", "_rxs", "_batches", "_fits", "_fits_until", "__weakref__")

    _id: int
    _key: int
    _buffer_size: int
    # Receivers not in use, each with room for buffer_size or more. A call pops
    # one and puts it back: threads never share one, and no lock is held (deque
    # pop and append are atomic; a list would realloc as it empties and refills).
    _rxs: Deque[_Rx]
    _batches: Deque[_Batch]  # the same for receive_many
    _fits: int  # the queue's max_size as last read, or -1
    _fits_until: float  # when that reading goes stale (monotonic clock)

    def __init__(self, key: int, buffer_size: Optional[int] = None, flags: int = 0) -> None:
        ukey = _key_arg(key)
        f = _int_arg("flags", flags)
        if f & ~(IPC_CREAT | IPC_EXCL | _PERMS) or f < 0:
            raise ValueError(
                f"unknown flag bits {f & ~(IPC_CREAT | IPC_EXCL | _PERMS):#o} for msgget; "
                "allowed: IPC_CREAT, IPC_EXCL and the permission bits 0o777"
            )
        self._buffer_size = _buffer_size_arg(buffer_size)
        self._key = ukey
        self._id = _msgget(ukey, f)
        self._rxs, self._batches = _deque(), _deque()
        self._fits, self._fits_until = -1, 0.0

    # named constructors

    @classmethod
    def create(
        cls: Type[_Q],
        key: int,
        *,
        mode: int = _DEFAULT_MODE,
        exclusive: bool = False,
        buffer_size: Optional[int] = None,
    ) -> _Q:
        """Open the queue with this key, creating it (with ``mode``) if there is none.

        Raises:
            QueueExists: ``exclusive`` and the queue exists already.
        """
        flags = IPC_CREAT | _mode_arg(mode) | (IPC_EXCL if exclusive else 0)
        return cls(key, buffer_size, flags)

    @classmethod
    def open(cls: Type[_Q], key: int, *, buffer_size: Optional[int] = None) -> _Q:
        """Open the existing queue with this key.

        Raises:
            ValueError: ``key`` is IPC_PRIVATE, which names no existing queue.
            QueueNotFound: no queue has this key.
        """
        if _key_arg(key) == IPC_PRIVATE:
            raise ValueError("IPC_PRIVATE names no existing queue: use private() or attach(id)")
        return cls(key, buffer_size, 0)

    @classmethod
    def private(cls: Type[_Q], *, mode: int = _DEFAULT_MODE, buffer_size: Optional[int] = None) -> _Q:
        """Create a new queue that no key reaches; share it by id or by pickling the handle."""
        return cls(IPC_PRIVATE, buffer_size, IPC_CREAT | _mode_arg(mode))

    @classmethod
    def attach(cls: Type[_Q], msqid: int, *, buffer_size: Optional[int] = None) -> _Q:
        """A handle on the queue with this id, as ``ipcs -q`` shows it.

        Attaching needs no permission on the queue. Its ``key`` is read with
        IPC_STAT, or with MSG_STAT_ANY where the caller may not read the
        queue; where neither will tell (no MSG_STAT_ANY), ``key`` is 0.

        Raises:
            QueueNotFound: no queue has this id.
        """
        qid = _int_arg("msqid", msqid)
        if not 0 <= qid <= _INT_MAX:
            raise ValueError(f"msqid must be 0..{_INT_MAX}, not {qid}")
        size = _buffer_size_arg(buffer_size)
        return cls._restore(qid, _key_of(qid), size)

    @classmethod
    def _restore(cls: Type[_Q], msqid: int, key: int, buffer_size: int) -> _Q:
        self = cls.__new__(cls)
        self._id = msqid
        self._key = key
        self._buffer_size = buffer_size
        self._rxs, self._batches = _deque(), _deque()
        self._fits, self._fits_until = -1, 0.0
        return self

    # attributes

    @property
    def id(self) -> int:
        """The queue's id, as ``ipcs -q`` shows it."""
        return self._id

    @property
    def key(self) -> int:
        """The queue's key, unsigned; 0 (IPC_PRIVATE) for a private queue."""
        return self._key

    @property
    def buffer_size(self) -> int:
        """The longest message ``receive`` and ``peek`` return whole."""
        return self._buffer_size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self._id} key={self._key:#010x} buffer_size={self._buffer_size}>"

    def __reduce__(self) -> Tuple[Any, Tuple[int, int, int]]:
        return (type(self)._restore, (self._id, self._key, self._buffer_size))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SysVMQ):
            return self._id == other._id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._id)

    def _describe(self) -> str:
        key = "private" if self._key == IPC_PRIVATE else f"key {self._key:#010x}"
        return f"queue {self._id} ({key})"

    # sending

    def send(
        self,
        message: Union[bytes, str, Buffer],
        type: int = 1,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> None:
        """Queue one message.

        Args:
            message: bytes, any C-contiguous buffer (not copied before the
                kernel copies it), or str, sent as UTF-8.
            type: 1..LONG_MAX; receivers select messages by it.
            flags: IPC_NOWAIT, the same as ``block=False``.
            block: wait while the queue is full; False raises QueueFull instead.
            timeout: seconds to wait for room (QueueFull when they pass);
                None or math.inf waits for ever, 0 tries once.

        Raises:
            MessageTooLarge: longer than kernel.msgmax, or than the queue's
                max_size (which it could never fit); nothing is queued.
            QueueFull: no room, with ``block=False`` or once ``timeout`` passes.
            QueueRemoved: the queue is gone, or was removed while waiting.
            QueuePermissionError: no write permission on the queue.
        """
        # The fast path. The C helper refuses a type < 1 (EINVAL) without a
        # syscall; whatever it refuses, the general path checks again and names.
        if (
            message.__class__ is bytes
            and (type is _ONE or type.__class__ is int)
            and flags is _ZERO
            and timeout is None
        ):
            try:
                if _c_send(self._id, type, message, len(message), IPC_NOWAIT) == 0:
                    return
            except OverflowError:
                pass  # a type beyond C long
            else:
                if ffi.errno == _EAGAIN:
                    if block:
                        return self._send_full(message, len(message), type, None)
                    raise self._send_error(_EAGAIN, len(message), None)
        t = _send_type_arg(type)
        f = _flags_arg(flags, _SEND_FLAGS, "send")
        nowait = not block or bool(f & IPC_NOWAIT)
        wait = _timeout_arg(timeout, nowait)
        data = _message_arg(message)
        try:
            if _c_send(self._id, t, data, len(data), IPC_NOWAIT) == 0:
                return
            err = ffi.errno
            if err != errno.EAGAIN or nowait:
                raise self._send_error(err, len(data), wait)
            self._send_full(data, len(data), t, wait)
        finally:
            _release(data)

    def _send_full(self, data: Any, size: int, mtype: int, timeout: Optional[float]) -> None:
        """A non-blocking try found the queue full: check the message can ever fit, then wait for room.

        Every send tries IPC_NOWAIT first so that this check, which Linux needs
        (it blocks for ever on a message longer than the queue's max_size),
        stays off the fast path. The max_size it reads is trusted for a second
        (update() through this handle forgets it): a send blocked when another
        process lowers max_size below its size waits for ever either way.
        """
        self._check_fits(size)
        if timeout is None:
            while _c_send(self._id, mtype, data, size, 0) != 0:
                err = ffi.errno
                if err != errno.EINTR:
                    raise self._send_error(err, size, None)
            return
        backoff = _Backoff(timeout)
        while backoff.wait():
            if _c_send(self._id, mtype, data, size, IPC_NOWAIT) == 0:
                return
            err = ffi.errno
            if err != errno.EAGAIN:
                raise self._send_error(err, size, timeout)
        raise self._send_error(errno.EAGAIN, size, timeout)

    def _check_fits(self, size: int) -> None:
        """MessageTooLarge unless ``size`` fits the queue's max_size, read at most once a second."""
        if size <= self._fits and _monotonic() <= self._fits_until:
            return
        try:
            max_size = self.stats().max_size
        except QueuePermissionError:
            max_size = _ULONG_MAX  # a write-only producer cannot read max_size: just wait
        self._fits_until = _monotonic() + _READING_TTL
        self._fits = max_size
        if size > max_size:
            raise MessageTooLarge(
                errno.E2BIG,
                f"msgsnd on {self._describe()}: a message of {size} bytes exceeds the "
                f"queue's max_size ({max_size}) and could never be queued; raise it with "
                f"update(max_size=...) up to kernel.msgmnb ({_msgmnb()}), beyond that "
                "with the sysctl or CAP_SYS_RESOURCE",
            )

    def _send_error(self, err: int, size: int, timeout: Optional[float]) -> SysVMQError:
        where = f"msgsnd on {self._describe()}"
        if err == errno.EAGAIN:
            waited = f" within {timeout:g} s" if timeout else ""
            return QueueFull(err, f"{where}: no room for a {size}-byte message{waited}")
        if err == errno.EINVAL:
            msgmax = _msgmax()
            if size > msgmax:
                return MessageTooLarge(
                    errno.E2BIG,
                    f"{where}: a message of {size} bytes exceeds kernel.msgmax ({msgmax}); raise the sysctl to send it",
                )
        return self._error(err, where, "no write permission")

    # receiving
    #
    # receive, receive_message and receive_into each begin with the same fast
    # path, written out in each: on CPython a shared helper costs a call per
    # message. Whatever the fast path does not take, _receive does in full.

    def receive(
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> bytes:
        """Take one message off the queue and return its bytes.

        Args:
            type: 0 takes the first message; > 0 the first of that type;
                < 0 the first of the lowest type <= abs(type).
            flags: IPC_NOWAIT, MSG_NOERROR (``truncate=True``), MSG_EXCEPT
                (Linux: with type > 0, the first of any other type).
            block: wait for a message; False raises QueueEmpty instead.
            timeout: seconds to wait (QueueEmpty when they pass); None or
                math.inf waits for ever, 0 tries once.
            truncate: return the first ``buffer_size`` bytes of a longer
                message (the rest is lost) instead of raising.

        Raises:
            QueueEmpty: nothing matches, with ``block=False`` or once ``timeout`` passes.
            MessageTooLarge: the message is longer than ``buffer_size``; it stays queued.
            QueueRemoved: the queue is gone, or was removed while waiting.
            QueuePermissionError: no read permission on the queue.
        """
        if (type is _ZERO or type.__class__ is int) and flags is _ZERO and block and timeout is None and not truncate:
            rxs = self._rxs
            try:
                r = rxs.pop()
            except IndexError:
                r = self._new_rx(0)
            try:
                n = _c_rx(r[0]) if type is _ZERO else _c_rx_type(r[0], type)
            except OverflowError:
                n = -1  # a type beyond C long: the general path says so
            if n >= 0:
                data: bytes = _unpack(r[1], n)
                rxs.append(r)
                return data
            rxs.append(r)
        result, _ = self._receive(type, flags, block, timeout, truncate, None)
        return result  # type: ignore[return-value]

    def receive_message(
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> Message:
        """As ``receive``, returning the message's type as well: ``Message(data, type)``."""
        if (type is _ZERO or type.__class__ is int) and flags is _ZERO and block and timeout is None and not truncate:
            rxs = self._rxs
            try:
                r = rxs.pop()
            except IndexError:
                r = self._new_rx(0)
            try:
                n = _c_rx(r[0]) if type is _ZERO else _c_rx_type(r[0], type)
            except OverflowError:
                n = -1
            if n >= 0:
                message = Message(_unpack(r[1], n), r[0].mtype)
                rxs.append(r)
                return message
            rxs.append(r)
        data, mtype = self._receive(type, flags, block, timeout, truncate, None)
        return Message(data, mtype)  # type: ignore[arg-type]

    def receive_into(
        self,
        buffer: Buffer,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> Tuple[int, int]:
        """As ``receive``, copying the message into a writable buffer instead of new bytes.

        The message may be as long as the buffer, whatever ``buffer_size`` is.

        Returns:
            ``(nbytes, type)``: how many bytes were written, and the message's type.

        Raises:
            TypeError: the buffer is read-only or not C-contiguous.
            MessageTooLarge: the message is longer than the buffer; it stays queued.
        """
        if buffer.__class__ is bytearray:
            dest = _from_buffer(_CHARS, buffer, True)  # contiguous and writable by nature
        else:
            dest = _borrow(buffer, "buffer", writable=True)
        try:
            if (
                (type is _ZERO or type.__class__ is int)
                and flags is _ZERO
                and block
                and timeout is None
                and not truncate
            ):
                size = len(dest)
                rxs = self._rxs
                try:
                    r = rxs.pop()
                except IndexError:
                    r = self._new_rx(size)
                if r[2] < size:
                    r = self._new_rx(size)
                try:
                    n = _c_rx_into(r[0], dest, size, type)
                except OverflowError:
                    n = -1  # a type beyond C long: the general path says so
                if n >= 0:
                    got = r[0].mtype
                    rxs.append(r)
                    return n, got
                rxs.append(r)
            return self._receive(type, flags, block, timeout, truncate, dest)  # type: ignore[return-value]
        finally:
            _release_buffer(dest)

    def _receive(
        self,
        mtype: object,
        flags: object,
        block: bool,
        timeout: object,
        truncate: bool,
        dest: Any,
    ) -> Tuple[Union[bytes, int], int]:
        """msgrcv in full: checks, timeouts, EINTR. Returns (the bytes, or their count if
        copied into ``dest``; the message's type)."""
        t = _receive_type_arg(mtype)
        f = _flags_arg(flags, _RECEIVE_FLAGS, "receive")
        if truncate:
            f |= MSG_NOERROR
        if not block:
            f |= IPC_NOWAIT
        wait = _timeout_arg(timeout, bool(f & IPC_NOWAIT))
        backoff: Optional[_Backoff] = None
        if wait is not None:
            backoff = _Backoff(wait)
            f |= IPC_NOWAIT
        size = self._buffer_size if dest is None else len(dest)
        r = self._take_rx(size)
        target = _NULL if dest is None else dest
        while True:
            n: int = _c_receive(r[0], size, t, f, target)
            if n >= 0:
                result = _unpack(r[1], n) if dest is None else n
                got = r[0].mtype
                self._rxs.append(r)
                return result, got
            err = ffi.errno
            if err == errno.EINTR:
                continue
            if err == errno.ENOMSG and backoff is not None and backoff.wait():
                continue
            self._rxs.append(r)
            raise self._receive_error(err, t, f, size, wait)

    def _take_rx(self, room: int) -> _Rx:
        """An idle receiver with room for at least ``room`` bytes."""
        try:
            r = self._rxs.pop()
        except IndexError:
            return self._new_rx(room)
        return r if r[2] >= room else self._new_rx(room)

    def _new_rx(self, room: int) -> _Rx:
        room = max(room, self._buffer_size, 1)
        rx = _new("struct sysvmq_rx *", [self._id, self._buffer_size, 0, room])
        return rx, rx.mtext, room

    def _receive_error(self, err: int, mtype: int, flags: int, size: int, timeout: Optional[float]) -> SysVMQError:
        where = f"msgrcv on {self._describe()}"
        if err == errno.ENOMSG:
            waited = f" within {timeout:g} s" if timeout else ""
            return QueueEmpty(err, f"{where}: no message{_selector(mtype, flags)}{waited}")
        if err == errno.E2BIG:
            return MessageTooLarge(
                err,
                f"{where}: the next message{_selector(mtype, flags)} is longer than the "
                f"{size}-byte buffer and stays queued; pass truncate=True or a larger buffer",
            )
        return self._error(err, where, "no read permission")

    # batches: one crossing into C for many messages

    def send_many(
        self,
        messages: Sequence[Union[bytes, str, Buffer]],
        type: int = 1,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> int:
        """Queue a sequence of messages of one type, in order, in one call into C.

        Every message is checked (as ``send`` checks one) before the first is
        sent. ``timeout`` bounds the whole call.

        Args:
            messages: a sequence (list, tuple) of bytes, buffers or str. Not an
                iterator: what was not sent must still be in the caller's hands.

        Returns:
            How many were queued: all of them, unless ``block=False`` stopped at a full queue.

        Raises:
            QueueFull: ``block=False`` and not even the first fitted, or ``timeout`` passed.
            MessageTooLarge: one is longer than kernel.msgmax (nothing is sent), or
                than the queue's max_size.
            Any exception raised once sending began (a signal handler's too)
            carries ``count``: how many were queued before it.
        """
        if messages.__class__ is not list and (
            isinstance(messages, (str, bytes, bytearray, memoryview))
            or not isinstance(messages, collections.abc.Sequence)
        ):
            raise TypeError(
                f"messages must be a sequence (list or tuple) of messages, not {messages.__class__.__name__}"
            )
        # Exact ints, no timeout, a list of bytes: checked inline, since a
        # batch of two 8 KiB messages must not pay more in Python than in C.
        t = type if type.__class__ is int and 0 < type <= _LONG_MAX else _send_type_arg(type)
        nowait = not block
        wait = None if timeout is None else _timeout_arg(timeout, nowait)
        try:
            blob = b"".join(messages)
            lens = array.array(_SIZE_T, map(len, messages))
            sizes = _from_buffer(_SIZES, lens)
            # len() counts items, not bytes (an array('i') differs): the lengths must add up.
            packed = _c_total(sizes, len(lens)) == len(blob)
        except (TypeError, BufferError):
            packed = False
        if not packed:
            blob, lens = _pack(messages)
            sizes = _from_buffer(_SIZES, lens)
        total = len(lens)
        if not total:
            return 0
        msgmax, read = _msgmax_seen
        if _monotonic() - read > _READING_TTL:
            msgmax = _msgmax_cached()
        # No message is longer than all of them together: most batches need no max().
        longest = len(blob) if len(blob) <= msgmax else max(lens)
        if longest > msgmax:
            msgmax = _msgmax_cached()  # read anew before refusing: it may have been raised
        if longest > msgmax:
            i = lens.index(longest)
            raise MessageTooLarge(
                errno.E2BIG,
                f"send_many on {self._describe()}: messages[{i}] of {longest} bytes exceeds "
                f"kernel.msgmax ({msgmax}); nothing was sent",
            )
        done: int = 0
        backoff: Optional[_Backoff] = None
        try:
            while True:
                done += _c_send_many(self._id, t, blob, sizes, total, done, IPC_NOWAIT)
                if done == total:
                    return total
                err = ffi.errno
                if err != errno.EAGAIN:
                    raise self._send_error(err, lens[done], wait)
                if nowait:
                    if done:
                        return done
                    raise self._send_error(err, lens[0], None)
                if backoff is None:
                    rest = max(lens[done:])
                    self._check_fits(rest)
                    if wait is not None:
                        backoff = _Backoff(wait)
                if backoff is None:
                    # Block in the kernel for the rest, still in one crossing.
                    done += _c_send_many(self._id, t, blob, sizes, total, done, 0)
                    if done == total:
                        return total
                    err = ffi.errno
                    if err != errno.EINTR:
                        raise self._send_error(err, lens[done], None)
                elif not backoff.wait():
                    raise self._send_error(errno.EAGAIN, lens[done], wait)
        except BaseException as exc:
            exc.count = done  # type: ignore[attr-defined]
            raise

    def receive_many(
        self,
        max_count: int,
        type: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> List[bytes]:
        """Wait (per ``block``/``timeout``) for one message, then take up to
        ``max_count - 1`` more that are queued already, without waiting; all in
        one call into C (one per 256 messages).

        ``type`` and ``truncate`` are those of ``receive``. An error after the
        first message ends the batch, which is returned; the next call meets the
        condition again (a too-large message stays queued).

        Raises:
            QueueEmpty: nothing matches, with ``block=False`` or once ``timeout`` passes.
            MessageTooLarge, QueueRemoved, QueuePermissionError: as ``receive``,
                for the first message.
        """
        return self._receive_many(max_count, type, block, timeout, truncate, False)  # type: ignore[return-value]

    def receive_many_messages(
        self,
        max_count: int,
        type: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> List[Message]:
        """As ``receive_many``, returning ``Message(data, type)`` for each."""
        return self._receive_many(max_count, type, block, timeout, truncate, True)  # type: ignore[return-value]

    def _receive_many(
        self, max_count: object, mtype: object, block: bool, timeout: object, truncate: bool, typed: bool
    ) -> Union[List[bytes], List[Message]]:
        count = max_count if max_count.__class__ is int else _int_arg("max_count", max_count)
        if count < 1:
            raise ValueError(f"max_count must be at least 1, not {count}")
        t = mtype if mtype.__class__ is int and _LONG_MIN <= mtype <= _LONG_MAX else _receive_type_arg(mtype)
        f = (MSG_NOERROR if truncate else 0) | (0 if block else IPC_NOWAIT)
        backoff: Optional[_Backoff] = None
        wait = None
        if timeout is not None:
            wait = _timeout_arg(timeout, not block)
            if wait is not None:
                backoff = _Backoff(wait)
                f |= IPC_NOWAIT
        k = count if count < _BATCH_COUNT else _BATCH_COUNT  # min() costs a call per batch
        batches = self._batches
        try:
            b = batches.pop()
        except IndexError:
            b = self._new_batch(k)
        if b[3] < k:
            b = self._new_batch(k)
        batch, view, fmt, _, _ = b
        result: List[Any] = []
        while True:
            want = count - len(result)
            if want > k:
                want = k
            n = _c_receive_many(batch, t, f, want)
            if n:
                texts = _unpack_from(_string(fmt), view)
                result.extend(map(Message, texts, _unpack(batch.types, n)) if typed else texts)
                # Go on only if it stopped at its count or its room (errno 0), not for want of messages.
                if len(result) == count or (n < want and ffi.errno):
                    break
                f |= IPC_NOWAIT  # it holds messages now: never wait again
                continue
            if result:
                break  # the next call meets this condition again
            err = ffi.errno
            if err == errno.EINTR:
                continue
            if err == errno.ENOMSG and backoff is not None and backoff.wait():
                continue
            batches.append(b)
            raise self._receive_error(err, t, f, self._buffer_size, wait)
        batches.append(b)
        return result

    def _new_batch(self, count: int) -> _Batch:
        rx = self._new_rx(0)[0]
        size = self._buffer_size
        room = max(size, min(count * size, _BATCH_BYTES), 1)
        out = _new("char[]", lib.SYSVMQ_HEADROOM + room)
        texts = out + lib.SYSVMQ_HEADROOM  # msgrcv puts each type just before its text
        fmt = _new("char[]", count * lib.SYSVMQ_FMT_ITEM + 1)
        types = _new("long[]", count)
        batch = _new("struct sysvmq_batch *", [rx, texts, room, fmt, types])
        return batch, ffi.buffer(texts, room), fmt, count, (rx, out, types)

    def peek(self, index: int = 0, *, truncate: bool = False) -> Message:
        """Copy the index-th message (0 is the oldest) without taking it off the queue.

        Uses msgrcv's MSG_COPY (Linux 3.8+, kernels built with CONFIG_CHECKPOINT_RESTORE).

        Raises:
            QueueEmpty: the queue holds no message at ``index``.
            MessageTooLarge: the message is longer than ``buffer_size`` (unless ``truncate``).
            UnsupportedOperation: the platform or kernel lacks MSG_COPY.
        """
        i = _int_arg("index", index)
        if not 0 <= i <= _LONG_MAX:
            raise ValueError(f"index must be 0..{_LONG_MAX}, not {i}")
        where = f"peek at index {i} of {self._describe()}"
        if not HAS_MSG_COPY:
            raise UnsupportedOperation(errno.ENOSYS, f"{where}: MSG_COPY is Linux-only")
        # The kernel will not truncate a copy (copy_msg answers EINVAL, not
        # what MSG_NOERROR promises): copy it whole, at most msgmax, and cut here.
        size = max(_msgmax(), self._buffer_size) if truncate else self._buffer_size
        r = self._take_rx(size)
        n = _c_receive(r[0], size, i, IPC_NOWAIT | MSG_COPY, _NULL)
        if n >= 0:
            message = Message(_unpack(r[1], min(n, self._buffer_size)), r[0].mtype)
            self._rxs.append(r)
            return message
        self._rxs.append(r)
        err = ffi.errno
        if err == errno.ENOMSG:
            raise QueueEmpty(err, f"{where}: the queue holds no message there")
        if err == errno.ENOSYS:
            raise UnsupportedOperation(err, f"{where}: the kernel lacks MSG_COPY (CONFIG_CHECKPOINT_RESTORE)")
        raise self._receive_error(err, 0, 0, size, None)

    # control

    def stats(self) -> QueueStats:
        """One ``msgctl(IPC_STAT)`` snapshot of the queue.

        Raises:
            QueuePermissionError: no read permission on the queue.
            QueueRemoved: the queue is gone.
        """
        ds = ffi.new("struct msqid_ds *")
        if lib.msgctl(self._id, IPC_STAT, ds) < 0:
            raise self._ctl_error(ffi.errno, "IPC_STAT", "no read permission")
        return _stats_of(self._id, ds)

    def update(
        self,
        *,
        max_size: Optional[int] = None,
        mode: Optional[int] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
    ) -> None:
        """Change the queue's max_size, permission bits or owner, in one ``msgctl(IPC_SET)``.

        Args:
            max_size: the most bytes the queue holds (msg_qbytes); above
                kernel.msgmnb needs CAP_SYS_RESOURCE.
            mode: permission bits, 0..0o777.
            uid, gid: the new owner.

        Raises:
            QueuePermissionError: not the owner or creator (nor CAP_SYS_ADMIN),
                or max_size above kernel.msgmnb without CAP_SYS_RESOURCE.
        """
        if max_size is None and mode is None and uid is None and gid is None:
            raise ValueError("update() needs at least one of max_size, mode, uid, gid")
        if max_size is not None:
            max_size = _int_arg("max_size", max_size)
            if not 1 <= max_size <= _ULONG_MAX:
                raise ValueError(f"max_size must be 1..{_ULONG_MAX} bytes (a queue of 0 holds nothing), not {max_size}")
        if mode is not None:
            mode = _mode_arg(mode)
        for name, value in (("uid", uid), ("gid", gid)):
            if value is not None and not 0 <= _int_arg(name, value) <= _ID_MAX:
                raise ValueError(f"{name} must be 0..{_ID_MAX}, not {value}")
        ds = ffi.new("struct msqid_ds *")
        if lib.msgctl(self._id, IPC_STAT, ds) < 0:
            raise self._ctl_error(ffi.errno, "IPC_STAT", "no read permission")
        if max_size is not None:
            ds.msg_qbytes = max_size
        if mode is not None:
            ds.msg_perm.mode = (ds.msg_perm.mode & ~_PERMS) | mode
        if uid is not None:
            ds.msg_perm.uid = uid
        if gid is not None:
            ds.msg_perm.gid = gid
        self._fits = -1  # forget the max_size _send_full read
        if lib.msgctl(self._id, IPC_SET, ds) < 0:
            err = ffi.errno
            detail = "only the owner or creator, or CAP_SYS_ADMIN, may change the queue"
            if err == errno.EPERM and max_size is not None and max_size > _msgmnb():
                detail = f"raising max_size above kernel.msgmnb ({_msgmnb()}) needs CAP_SYS_RESOURCE"
            raise self._ctl_error(err, "IPC_SET", detail)

    def destroy(self) -> None:
        """Remove the queue (``msgctl(IPC_RMID)``); its messages are lost and waiters get QueueRemoved.

        Raises:
            QueuePermissionError: not the owner or creator, nor CAP_SYS_ADMIN.
            QueueRemoved: the queue is gone already.
        """
        if lib.msgctl(self._id, IPC_RMID, ffi.NULL) < 0:
            raise self._ctl_error(
                ffi.errno, "IPC_RMID", "only the owner or creator, or CAP_SYS_ADMIN, may remove the queue"
            )

    def _ctl_error(self, err: int, cmd: str, denied: str) -> SysVMQError:
        return self._error(err, f"msgctl({cmd}) on {self._describe()}", denied)

    def _error(self, err: int, where: str, denied: str) -> SysVMQError:
        """The exception for what a call on this queue left in errno; ``denied`` says what EACCES/EPERM refused."""
        if err == errno.EINVAL:
            return self._einval(where)
        if err in (errno.EACCES, errno.EPERM):
            return error_from_errno(err, where, denied)
        return error_from_errno(err, where)

    def _einval(self, where: str) -> SysVMQError:
        """EINVAL means a bad argument, or an id that names no queue any more: look."""
        if lib.msgctl(self._id, IPC_STAT, ffi.new("struct msqid_ds *")) < 0 and ffi.errno in (
            errno.EINVAL,
            errno.EIDRM,
        ):
            return QueueRemoved(errno.EIDRM, f"{where}: the queue no longer exists")
        return error_from_errno(errno.EINVAL, where)


def _selector(mtype: int, flags: int) -> str:
    if mtype == 0:
        return ""
    if mtype < 0:
        return f" of type <= {-mtype}"
    if flags & MSG_EXCEPT:
        return f" of a type other than {mtype}"
    return f" of type {mtype}"


def _msgmnb() -> int:
    return limits().msgmnb if HAS_IPC_INFO else 0


def _msgget(ukey: int, flags: int) -> int:
    if (flags & IPC_CREAT or ukey == IPC_PRIVATE) and not flags & _PERMS:
        flags |= _DEFAULT_MODE  # mode 0 would lock a non-root owner out of its own queue
    msqid = lib.msgget(_c_key(ukey), flags)
    if msqid >= 0:
        return msqid  # type: ignore[no-any-return]
    err = ffi.errno
    if err == errno.EACCES and not flags & IPC_EXCL:
        # msgget checks the requested permission bits against the queue's;
        # asking for none only tests existence. Access is checked at use.
        msqid = lib.msgget(_c_key(ukey), 0)
        if msqid >= 0:
            return msqid  # type: ignore[no-any-return]
        err = ffi.errno
    where = f"msgget of key {ukey:#010x}"
    if err == errno.ENOENT:
        detail = "no queue has this key (pass IPC_CREAT, or use SysVMQ.create, to create one)"
    elif err == errno.EEXIST:
        detail = "a queue has this key already (IPC_EXCL)"
    elif err == errno.ENOSPC:
        detail = f"kernel.msgmni ({limits().msgmni if HAS_IPC_INFO else '?'}) queues exist already"
    else:
        detail = None
    raise error_from_errno(err, where, detail)


def _key_of(msqid: int) -> int:
    """The key of the queue with this id; QueueNotFound if there is none."""
    ds = ffi.new("struct msqid_ds *")
    if lib.msgctl(msqid, IPC_STAT, ds) == 0:
        return lib.sysvmq_key(ds) & _KEY_MASK  # type: ignore[no-any-return]
    err = ffi.errno
    if err in (errno.EINVAL, errno.EIDRM):
        raise QueueNotFound(errno.ENOENT, f"attach: no queue has id {msqid}")
    if err not in (errno.EACCES, errno.EPERM):
        raise error_from_errno(err, f"msgctl(IPC_STAT) on queue {msqid}")
    # The queue exists but is not ours to read: MSG_STAT_ANY still lists it.
    if HAS_MSG_STAT:
        for st in queues():
            if st.id == msqid:
                return st.key
    return IPC_PRIVATE  # the kernel will not say; 0 stands for "unknown"
