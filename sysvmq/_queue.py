"""SysVMQ: the facade over msgget, msgsnd, msgrcv and msgctl.

Each method checks its arguments (``_args``), takes a call state from the
handle's pool (``_calls``), makes its first crossing into C, and hands
whatever did not finish at once to ``_wait``. Errors are worded in
``_errors``, readings of the kernel come from ``_kernel``.

One contract on every path: an exception raised out of a send or a receive
after the kernel queued or handed over messages says so, as ``count`` (how
many were queued) or ``received`` (the messages taken). The C side records
both in the call's state before it returns; each method binds the state (``c
:= call.c``) as the last operand of the crossing, so that on CPython 3.11+,
which runs signal handlers only at calls and backward jumps, no handler runs
between the binding and C. Where handlers may run between any two bytecodes
(PyPy, CPython 3.9 and 3.10: ``_calls.ANYWHERE``), the pool hands out each
state reset, so that it can never show a past call's progress. What a
method has taken is bound to a local before anything else is called, and
nothing is called between that and the return. There, a handler that raises
as a method's ``return`` runs, after its try block has ended, leaves with an
exception that carries neither ``count`` nor ``received`` though the call is
done, as one that raises in the caller just after would: Python gives a
library no way to close that last step. PyPy runs handlers at backward jumps,
and a signal that came during the crossing would wait for the caller's next
one: so there each method, once its call is done, runs a loop of one turn
(``for _ in _ONE_TURN``) inside its try, where such a handler runs and its
exception says what was done.
"""

import array
import errno
import functools
import itertools
import os
import struct
from typing import Any, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from ._args import (
    RECEIVE_FLAGS,
    SEND_FLAGS,
    SIZE_T,
    borrow,
    buffer_size_arg,
    flags_arg,
    index_arg,
    key_arg,
    lengths_arg,
    max_count_arg,
    max_size_arg,
    message_arg,
    messages_arg,
    mode_arg,
    msgget_flags_arg,
    msqid_arg,
    owner_arg,
    pack,
    receive_type_arg,
    release,
    send_type_arg,
    timeout_arg,
)
from ._calls import BATCH_COUNT, BATCH_WANTED, PYPY, Batch, Call, Pool
from ._calls import split as _split
from ._errors import (
    NO_READ,
    NO_WRITE,
    NOT_OWNER_RMID,
    NOT_OWNER_SET,
    QueueEmpty,
    SysVMQError,
    UnsupportedOperation,
    carry_count,
    carry_received,
    describe_queue,
    error_from_errno,
    exceeds_max_size,
    exceeds_msgmax,
    keep_above_msgmnb,
    longer_than_buffer,
    queue_empty,
    queue_full,
    queue_removed,
    raise_above_msgmnb,
)
from ._ffi import (
    CHARS,
    HAS_MSG_COPY,
    HAS_MSG_STAT_ANY,
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    LONG_MAX,
    LONG_MIN,
    MSG_COPY,
    MSG_EXCEPT,
    MSG_NOERROR,
    MSG_STAT_ANY,
    MSQID_DS_P,
    SIZES,
    ffi,
    lib,
)
from ._kernel import (
    DEFAULT_MODE,
    Capacity,
    capacity_of,
    ipc_stat,
    key_of,
    msgget,
    msgmax,
    msgmnb,
    stat_any,
    stats,
)
from ._stats import Message, QueueStats
from ._wait import deadline_of, finish

__all__ = ["SysVMQ"]

# The hot paths reach C through module globals (cheaper than attributes of
# lib), and test options by identity: every int 0 or 1 is this object on
# CPython, and ints compare by value under ``is`` on PyPy, while 0.0, False
# and int subclasses fail the test and take the general path.
_c_send = lib.sysvmq_send
_c_send1 = lib.sysvmq_send1
_c_sent = lib.sysvmq_sent
_tickets = itertools.count(1)  # for sysvmq_send1: unique within a thread is enough
_c_rx = lib.sysvmq_rx
_c_rx_type = lib.sysvmq_rx_type
_c_rx_into = lib.sysvmq_rx_into
_c_try_rx = lib.sysvmq_try_rx
_c_try_rx_type = lib.sysvmq_try_rx_type
_c_try_rx_into = lib.sysvmq_try_rx_into
# ``if PYPY: for _ in _ONE_TURN: pass`` as a call ends, inside its try: PyPy runs handlers at
# backward jumps, and one pending as the crossing returns ran only after the method had
# returned, its exception without ``count`` or ``received`` (9 in 10 such exceptions, under a
# storm of raising handlers). CPython, which runs them at calls (3.11+) or between any two
# bytecodes (3.9, 3.10), runs them in the try already, and skips the loop.
_ONE_TURN = (None,)
# The fast paths take a timeout as it is, a float or an int from 0 up to these (31 years), each
# class tested apart so that CPython compares with its specialised float or int comparison;
# the general path checks the rest.
_FAST_TIMEOUT = 1e9
_FAST_INT_TIMEOUT = 1_000_000_000
_c_receive = lib.sysvmq_receive
_c_send_many = lib.sysvmq_send_many
_c_send_batch = lib.sysvmq_send_batch
_c_send_few = lib.sysvmq_send_few
_FEW = lib.SYSVMQ_FEW
_PADS = [[b""] * (_FEW - k) for k in range(_FEW + 1)]  # send_many's texts padded to _FEW
_NOT_FEW = (None,) * _FEW
_c_receive_many = lib.sysvmq_receive_many
_c_reset = lib.sysvmq_reset
_RECEIVE = lib.SYSVMQ_RECEIVE
_ZERO = 0
_ONE = 1
_EAGAIN = errno.EAGAIN
_ENOMSG = errno.ENOMSG
_EINTR = errno.EINTR
_NULL = ffi.NULL
_unpack = ffi.unpack
_unpack_from = struct.unpack_from
_string = ffi.string
_from_buffer = ffi.from_buffer
_release_buffer = ffi.release
_CHARS = CHARS  # parsed once, in _ffi: from_buffer would parse the string on every call
_SIZES = SIZES
_array = array.array
_memoryview = memoryview
_LONG_SIZE = ffi.sizeof("long")
# send_many joins its texts with the type between them, in C's long: msgsnd(2) reads each text
# after the first where the join put it, behind its type, with no copy into the msgbuf.
_type_bytes = struct.Struct("l").pack
_ONE_BYTES = _type_bytes(1)
# Message(data, type) for each pair, without Python's __new__ of a NamedTuple: half the cost on CPython.
_new_tuple = tuple.__new__
_MESSAGE_EVER = itertools.repeat(Message)  # endless, so it keeps no count: one for every call and thread
_type = type
_bytes_len = bytes.__len__
_partial = functools.partial


def _byte_lengths(texts: List[Any]) -> "Optional[array.array[int]]":
    """Each text's length in bytes if all are bytes, else None (pack() copes with the rest).

    bytes.__len__ counts the bytes of a subclass too, whatever its own len()
    says, and refuses anything that only looks like bytes (a faked __class__);
    len() of another buffer would count its items.
    """
    try:
        return _array(SIZE_T, map(_bytes_len, texts))
    except TypeError:
        return None


def _joined(texts: List[Any], sep: bytes) -> "Optional[Tuple[array.array[int], bytes]]":
    """Each text's length and the texts joined with sep between each two, if all are bytes by
    their real type (a faked __class__ is not believed): len() of anything else may count other
    than its bytes (a subclass's __len__, a view of ints). Else None: the general path copes."""
    if list(map(_type, texts)).count(bytes) != len(texts):
        return None
    return _array(SIZE_T, map(len, texts)), sep.join(texts)


def _messages(texts: Sequence[bytes], types: List[int]) -> List[Message]:
    return list(map(_new_tuple, _MESSAGE_EVER, zip(texts, types)))


_Q = TypeVar("_Q", bound="SysVMQ")
Buffer = Any  # anything with the buffer protocol; typing gains a name for it in 3.12


def _restore(cls: Type[_Q], msqid: int, key: int, buffer_size: int) -> _Q:
    """A handle on an existing queue, made without msgget: pickling, attach."""
    self = cls.__new__(cls)
    SysVMQ._bind(self, msqid, key, buffer_size)
    return self


class SysVMQ:
    """One handle on one kernel message queue.

    The handle is only the queue's id: it holds no OS resource, works in a
    forked child, pickles to another process, and may be used by many threads
    at once. Only ``destroy()`` removes the queue. See msgget(2), msgop(2),
    msgctl(2).

    Args:
        key: the queue's key, as many bits as the platform's key_t (32 on
            Linux and macOS, 0..2**32-1; 64 on the 64-bit BSDs), or the
            negative int with the same bits, or IPC_PRIVATE for a new queue no
            other key reaches.
        buffer_size: the longest message this handle receives, in bytes;
            None means the kernel's current msgmax.
        flags: msgget(2) flags, IPC_CREAT and IPC_EXCL, or-ed with the
            permission bits. Creating with no permission bits gives 0o600.

    Raises:
        QueueNotFound: no queue has the key, and IPC_CREAT was not given.
        QueueExists: IPC_CREAT | IPC_EXCL, and a queue has the key.
        SysVMQError: any other failure of msgget(2), such as ENOSPC when
            kernel.msgmni queues exist.
    """

    __slots__ = ("_id", "_key", "_buffer_size", "_pool", "_calls", "_batches", "_capacity", "__weakref__")

    _id: int
    _key: int
    _buffer_size: int
    _pool: Pool  # idle call states (see _calls)
    _calls: Any  # _pool.calls, one attribute away for the hot paths
    _batches: Any  # _pool.batches, likewise
    _capacity: Capacity  # the longest message the queue accepts, as last read

    def __init__(self, key: int, buffer_size: Optional[int] = None, flags: int = 0) -> None:
        ukey = key_arg(key)
        f = msgget_flags_arg(flags)
        size = buffer_size_arg(buffer_size, msgmax())
        self._bind(msgget(ukey, f), ukey, size)

    def _bind(self, msqid: int, key: int, buffer_size: int) -> None:
        self._id = msqid
        self._key = key
        self._buffer_size = buffer_size
        self._pool = Pool(msqid, buffer_size)
        self._calls = self._pool.calls
        self._batches = self._pool.batches
        self._capacity = capacity_of(msqid)

    # named constructors

    @classmethod
    def create(
        cls: Type[_Q],
        key: int,
        *,
        mode: int = DEFAULT_MODE,
        exclusive: bool = False,
        buffer_size: Optional[int] = None,
    ) -> _Q:
        """Open the queue with this key, creating it (with ``mode``) if there is none.

        Raises:
            ValueError: ``key`` is IPC_PRIVATE (0), which would make a new queue on every call.
            QueueExists: ``exclusive`` and the queue exists already.
        """
        if key_arg(key) == IPC_PRIVATE:
            raise ValueError("key 0 is IPC_PRIVATE: it makes a new queue on every call, use private()")
        flags = IPC_CREAT | mode_arg(mode) | (IPC_EXCL if exclusive else 0)
        return cls(key, buffer_size, flags)

    @classmethod
    def open(cls: Type[_Q], key: int, *, buffer_size: Optional[int] = None) -> _Q:
        """Open the existing queue with this key.

        Raises:
            ValueError: ``key`` is IPC_PRIVATE, which names no existing queue.
            QueueNotFound: no queue has this key.
        """
        if key_arg(key) == IPC_PRIVATE:
            raise ValueError("IPC_PRIVATE names no existing queue: use private() or attach(id)")
        return cls(key, buffer_size, 0)

    @classmethod
    def private(cls: Type[_Q], *, mode: int = DEFAULT_MODE, buffer_size: Optional[int] = None) -> _Q:
        """Create a new queue that no key reaches; share it by id or by pickling the handle."""
        return cls(IPC_PRIVATE, buffer_size, IPC_CREAT | mode_arg(mode))

    @classmethod
    def attach(cls: Type[_Q], msqid: int, *, buffer_size: Optional[int] = None) -> _Q:
        """A handle on the queue with this id, as ``ipcs -q`` shows it.

        Attaching needs no permission on the queue. Its ``key`` is read with
        IPC_STAT, or with MSG_STAT_ANY where the caller may not read the
        queue; where neither will tell (no MSG_STAT_ANY), ``key`` is 0.

        Raises:
            QueueNotFound: no queue has this id.
        """
        qid = msqid_arg(msqid)
        size = buffer_size_arg(buffer_size, msgmax())
        return _restore(cls, qid, key_of(qid), size)

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
        """The longest message ``receive`` and ``peek`` return whole, in bytes."""
        return self._buffer_size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self._id} key={self._key:#010x} buffer_size={self._buffer_size}>"

    def __reduce__(self) -> Tuple[Any, ...]:
        # The id, key and buffer size make the handle; a subclass's own
        # attributes (its __dict__ and slots) travel as the state.
        extra = {
            name: getattr(self, name)
            for cls in type(self).__mro__
            if cls is not SysVMQ and cls is not object
            for name in cls.__dict__.get("__slots__", ())
            if name not in ("__dict__", "__weakref__") and hasattr(self, name)
        }
        own = getattr(self, "__dict__", None) or None
        args = (type(self), self._id, self._key, self._buffer_size)
        if extra:
            return (_restore, args, (own, extra))
        return (_restore, args) if own is None else (_restore, args, own)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SysVMQ):
            return self._id == other._id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._id)

    def _describe(self) -> str:
        return describe_queue(self._id, self._key)

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
        """Queue one message (msgsnd(2)).

        Args:
            message: bytes, any C-contiguous buffer, or str, sent as UTF-8.
                Its bytes are copied once, behind the type, into the message
                buffer msgsnd reads (a buffer is not copied before that).
            type: 1..LONG_MAX; receivers select messages by it.
            flags: IPC_NOWAIT, the same as ``block=False``.
            block: wait while the queue is full; False raises QueueFull instead.
            timeout: seconds to wait for room (QueueFull when they pass);
                None or math.inf waits for ever, 0 tries once.

        Raises:
            MessageTooLarge: longer than kernel.msgmax, or than the queue's
                max_size (which it could never fit), whether or not the call
                may wait; nothing is queued.
            QueueFull: no room, with ``block=False`` or once ``timeout`` passes.
            QueueRemoved: the queue is gone, or was removed while waiting.
            QueuePermissionError: no write permission on the queue.

        Any exception raised out of ``send``, a signal handler's too, carries
        ``count``: 1 if the message was queued, 0 if not.
        """
        if (
            _type(message) is bytes  # not __class__, which a subclass may fake: len() must count bytes
            and (type is _ONE or type.__class__ is int)
            and flags is _ZERO
            and (
                timeout is None
                or (
                    block
                    and (
                        (timeout.__class__ is float and 0.0 <= timeout < _FAST_TIMEOUT)
                        or (timeout.__class__ is int and 0 <= timeout < _FAST_INT_TIMEOUT)
                    )
                )
            )
        ):
            # The fast path: one try without waiting, its outcome kept by ticket.
            ticket = next(_tickets)
            try:
                if _c_send1(self._id, type, message, len(message), ticket) == 0:
                    if PYPY:
                        for _ in _ONE_TURN:
                            pass
                    return
            except OverflowError:  # a type beyond C long, refused before C ran
                pass
            except BaseException as exc:
                carry_count(exc, 1 if _c_sent(ticket) == 0 else 0)
                raise
            # No room, or a type < 1, ...: the general path checks, waits, or says why. Nothing was queued.
        call = queued = None
        try:
            call = self._pool.call()
            self._send(call, message, type, flags, block, timeout)
            queued = True
            self._pool.give_back(call)
            if PYPY:
                for _ in _ONE_TURN:
                    pass
        except BaseException as exc:
            if queued:
                carry_count(exc, 1)
            else:
                carry_count(exc, 0 if call is None else call.c.done)
                if call is not None:
                    self._pool.give_back(call)
            raise

    def _send(self, call: Call, message: object, mtype: object, flags: object, block: bool, timeout: object) -> None:
        """send in full: the checks, the first try, the wait."""
        t = send_type_arg(mtype)
        f = flags_arg(flags, SEND_FLAGS, "send")
        nowait = not block or bool(f & IPC_NOWAIT)
        wait = timeout_arg(timeout, nowait)
        data = message_arg(message)
        try:
            size = len(data)
            if size > call.room:
                self._check_fits(size)
                call.grow(size)
            if _c_send(call.c, t, data, size) != 0:
                self._send_wait(call, size, call.c.err, nowait, wait)
        finally:
            release(data)

    def _send_wait(self, call: Call, size: int, err: int, nowait: bool, timeout: Optional[float]) -> None:
        """A send's first try did not queue it: wait for room as told, or raise."""
        err = finish(call, err, nowait, deadline_of(timeout), lambda: self._check_fits(size, fresh=True))
        if err:
            raise self._send_error(err, size, timeout)

    def _check_fits(self, size: int, which: str = "a message", where: str = "msgsnd", fresh: bool = False) -> None:
        """MessageTooLarge if ``size`` exceeds kernel.msgmax or the queue's max_size (read anew before refusing).

        Linux would let a send wait for ever for room it can never have. A send
        that found no room checks ``fresh``: another process may have lowered
        max_size since the reading, which would then let it wait for ever.
        """
        cap = self._capacity.refresh() if fresh else self._capacity.current()
        if size <= cap.longest:
            return
        if not fresh:
            cap = cap.refresh()
        where = f"{where} on {self._describe()}"
        if size > cap.msgmax:
            raise exceeds_msgmax(where, size, cap.msgmax, which)
        if cap.max_size is not None and size > cap.max_size:
            raise exceeds_max_size(where, size, cap.max_size, msgmnb() or 0, which)

    def _send_error(self, err: int, size: int, timeout: Optional[float]) -> SysVMQError:
        where = f"msgsnd on {self._describe()}"
        if err == _EAGAIN:
            _, st = stats(self._id)
            if st is None:
                st = stat_any(self._id)
            if st is None:
                return queue_full(where, size, timeout, 0, 0, None)
            return queue_full(where, size, timeout, st.count, st.size, st.max_size)
        if err == errno.EINVAL and size > msgmax():
            return exceeds_msgmax(where, size, msgmax())
        return self._error(err, where, NO_WRITE)

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
        """Take one message off the queue and return its bytes (msgrcv(2)).

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

        Any exception raised out of ``receive``, a signal handler's too,
        carries ``received``: the message taken, as ``[Message(data, type)]``,
        if the kernel had handed it over, else ``[]``.
        """
        calls = self._calls
        try:
            call = calls.pop()
        except IndexError:
            call = self._pool.call()
        c = mtype = None  # c: bound as C is entered (see the module docstring); mtype: taken
        try:
            # The blocking call first, then the timed and non-blocking ones. Tested in this order,
            # no jump needs an extended argument, which the blocking path would pay for.
            if block and timeout is None and flags is _ZERO and not truncate:
                if type is _ZERO:
                    n = _c_rx(c := call.c)
                elif type.__class__ is int:
                    try:
                        n = _c_rx_type(c := call.c, type)
                    except OverflowError:  # a type beyond C long, refused before C ran
                        c, n = None, -2
                else:
                    n = -2
                if n >= 0:
                    data: bytes = call.text[:n]
                    mtype = call.mtype[0]
                    calls.append(call)
                    if PYPY:
                        for _ in _ONE_TURN:
                            pass
                    return data
                if n == -1:  # EINTR and the like: wait on as a blocking call does
                    n = self._receive_wait(call, c.err, type, 0, False, None, self._buffer_size)  # type: ignore[union-attr]
                    data = call.text[:n]
                    mtype = call.mtype[0]
                    calls.append(call)
                    if PYPY:
                        for _ in _ONE_TURN:
                            pass
                    return data
            elif (
                flags is _ZERO
                and not truncate
                and (
                    timeout is None
                    or (
                        block
                        and (
                            (timeout.__class__ is float and 0.0 <= timeout < _FAST_TIMEOUT)
                            or (timeout.__class__ is int and 0 <= timeout < _FAST_INT_TIMEOUT)
                        )
                    )
                )
            ):
                # A timed or non-blocking call tries without waiting first; a timed one then waits.
                if type is _ZERO:
                    n = _c_try_rx(c := call.c)
                elif type.__class__ is int:
                    try:
                        n = _c_try_rx_type(c := call.c, type)
                    except OverflowError:
                        c, n = None, -2
                else:
                    n = -2
                if n == -1:
                    n = self._receive_wait(call, c.err, type, 0, not block, timeout, self._buffer_size)  # type: ignore[union-attr]
                if n >= 0:
                    data = call.text[:n]
                    mtype = call.mtype[0]
                    calls.append(call)
                    if PYPY:
                        for _ in _ONE_TURN:
                            pass
                    return data
            _c_reset(call.c)
            c = call.c
            n = self._receive(call, type, flags, block, timeout, truncate, None)
            data = call.text[:n]
            mtype = call.mtype[0]
            self._pool.give_back(call)
            if PYPY:
                for _ in _ONE_TURN:
                    pass
            return data
        except BaseException as exc:
            if mtype is not None:  # the call may be back in the pool: leave it there
                carry_received(exc, [Message(data, mtype)])
            else:
                carry_received(exc, [] if c is None else _taken(call))
                self._pool.give_back(call)
            raise

    def _receive_now(self) -> Optional[bytes]:
        """The first message if one is queued, else None: ``receive(block=False)`` of type 0 without flags.

        For sysvmq.asyncio, whose receives try this before they wait: one
        crossing, none of ``receive``'s arguments to sort out. None also when a
        handler ran and returned (EINTR): the caller waits, trying again. Any
        other error is raised as ``receive`` raises it, from this one try (a
        second could find another consumer took the message meanwhile). An
        exception leaving it carries ``received`` as ``receive``'s does.
        """
        calls = self._calls
        try:
            call = calls.pop()
        except IndexError:
            call = self._pool.call()
        c = mtype = None
        back = False  # the state is in the pool again (or about to be): never give it back twice
        try:
            n = _c_try_rx(c := call.c)
            if n >= 0:
                data: bytes = call.text[:n]
                mtype = call.mtype[0]
                calls.append(call)
                if PYPY:
                    for _ in _ONE_TURN:
                        pass
                return data
            err = c.err
            if err != _ENOMSG and err != _EINTR:
                raise self._receive_error(err, 0, 0, self._buffer_size, None)
            back = True
            calls.append(call)
            return None
        except BaseException as exc:
            if mtype is not None:  # the call may be back in the pool: leave it there
                carry_received(exc, [Message(data, mtype)])
            elif back:
                carry_received(exc, [])  # it took nothing
            else:
                carry_received(exc, [] if c is None else _taken(call))
                self._pool.give_back(call)
            raise

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
        calls = self._calls
        try:
            call = calls.pop()
        except IndexError:
            call = self._pool.call()
        c = message = None
        try:
            if flags is _ZERO and not truncate:
                wait = None
                if block and timeout is None:
                    if type is _ZERO:
                        n = _c_rx(c := call.c)
                    elif type.__class__ is int:
                        try:
                            n = _c_rx_type(c := call.c, type)
                        except OverflowError:
                            c, n = None, -2
                    else:
                        n = -2
                elif timeout is None or (
                    block
                    and (
                        (timeout.__class__ is float and 0.0 <= timeout < _FAST_TIMEOUT)
                        or (timeout.__class__ is int and 0 <= timeout < _FAST_INT_TIMEOUT)
                    )
                ):
                    if type is _ZERO:
                        n = _c_try_rx(c := call.c)
                    elif type.__class__ is int:
                        try:
                            n = _c_try_rx_type(c := call.c, type)
                        except OverflowError:
                            c, n = None, -2
                    else:
                        n = -2
                    wait = timeout
                else:
                    n = -2
                if n == -1:
                    n = self._receive_wait(call, c.err, type, 0, not block, wait, self._buffer_size)  # type: ignore[union-attr]
                if n >= 0:
                    message = Message(call.text[:n], call.mtype[0])
                    calls.append(call)
                    if PYPY:
                        for _ in _ONE_TURN:
                            pass
                    return message
            _c_reset(call.c)
            c = call.c
            n = self._receive(call, type, flags, block, timeout, truncate, None)
            message = Message(call.text[:n], call.mtype[0])
            self._pool.give_back(call)
            if PYPY:
                for _ in _ONE_TURN:
                    pass
            return message
        except BaseException as exc:
            if message is not None:
                carry_received(exc, [message])
            else:
                carry_received(exc, [] if c is None else _taken(call))
                self._pool.give_back(call)
            raise

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

        An exception raised out of it carries ``received`` as ``receive``
        says; a message taken was also written into the buffer.
        """
        if buffer.__class__ is bytearray:
            dest = _from_buffer(_CHARS, buffer, True)  # contiguous and writable by nature
        else:
            dest = borrow(buffer, "buffer", writable=True)
        calls = self._calls
        try:
            call = calls.pop()
        except IndexError:
            call = self._pool.call()
        c = mtype = None
        try:
            size = len(dest)
            # size <= call.room is tested inside each branch, where its jump is short enough
            # for CPython to specialise the comparison.
            if (type is _ZERO or type.__class__ is int) and flags is _ZERO and not truncate:
                if block and timeout is None:
                    if size <= call.room:
                        try:
                            n = _c_rx_into(c := call.c, dest, size, type)
                        except OverflowError:
                            c, n = None, -2
                        if n >= 0:
                            mtype = call.mtype[0]
                            calls.append(call)
                            _release_buffer(dest)
                            if PYPY:
                                for _ in _ONE_TURN:
                                    pass
                            return n, mtype
                        if n == -1:
                            n = self._receive_wait(call, c.err, type, 0, False, None, size)  # type: ignore[union-attr]
                            mtype = call.mtype[0]
                            calls.append(call)
                            _release_buffer(dest)
                            if PYPY:
                                for _ in _ONE_TURN:
                                    pass
                            return n, mtype
                elif (
                    timeout is None
                    or (
                        block
                        and (
                            (timeout.__class__ is float and 0.0 <= timeout < _FAST_TIMEOUT)
                            or (timeout.__class__ is int and 0 <= timeout < _FAST_INT_TIMEOUT)
                        )
                    )
                ) and size <= call.room:
                    try:
                        n = _c_try_rx_into(c := call.c, dest, size, type)
                    except OverflowError:
                        c, n = None, -2
                    if n == -1:
                        n = self._receive_wait(call, c.err, type, 0, not block, timeout, size)  # type: ignore[union-attr]
                    if n >= 0:
                        mtype = call.mtype[0]
                        calls.append(call)
                        _release_buffer(dest)
                        if PYPY:
                            for _ in _ONE_TURN:
                                pass
                        return n, mtype
            _c_reset(call.c)
            c = call.c
            n = self._receive(call, type, flags, block, timeout, truncate, dest)
            mtype = call.mtype[0]
            self._pool.give_back(call)
            _release_buffer(dest)
            if PYPY:
                for _ in _ONE_TURN:
                    pass
            return n, mtype
        except BaseException as exc:
            # Released before the return, not in a finally clause: a handler that raised
            # there would leave the call without its except clause, and ``received``.
            _release_buffer(dest)
            if mtype is not None:  # the message is in the caller's buffer
                carry_received(exc, [Message(_memoryview(buffer).cast("B")[:n].tobytes(), mtype)])
            else:
                carry_received(exc, [] if c is None else _taken(call))
                self._pool.give_back(call)
            raise

    def _receive(
        self, call: Call, mtype: object, flags: object, block: bool, timeout: object, truncate: bool, dest: Any
    ) -> int:
        """msgrcv in full: the checks, the first try, the wait. Returns the text's length."""
        t = receive_type_arg(mtype)
        f = flags_arg(flags, RECEIVE_FLAGS, "receive")
        if truncate:
            f |= MSG_NOERROR
        if not block:
            f |= IPC_NOWAIT
        nowait = bool(f & IPC_NOWAIT)
        wait = timeout_arg(timeout, nowait)
        size = self._buffer_size if dest is None else len(dest)
        if size > call.room:
            call.grow(size)
        first = f | IPC_NOWAIT if wait is not None else f  # a timed call waits only after a try
        n: int = _c_receive(call.c, t, first, _NULL if dest is None else dest, size)
        if n >= 0:
            return n
        return self._receive_wait(call, call.c.err, t, f, nowait, wait, size)

    def _receive_wait(
        self, call: Call, err: int, mtype: int, flags: int, nowait: bool, timeout: Optional[float], size: int
    ) -> int:
        """A receive's first try took nothing: wait as told, or raise. Returns the text's length."""
        err = finish(call, err, nowait, deadline_of(timeout))
        if err:
            raise self._receive_error(err, mtype, flags, size, timeout)
        n: int = call.c.len
        return n

    def _receive_error(self, err: int, mtype: int, flags: int, size: int, timeout: Optional[float]) -> SysVMQError:
        where = f"msgrcv on {self._describe()}"
        except_ = bool(flags & MSG_EXCEPT)
        if err == errno.ENOMSG:
            return queue_empty(where, mtype, except_, timeout)
        if err == errno.E2BIG:
            return longer_than_buffer(where, mtype, except_, size)
        return self._error(err, where, NO_READ)

    # batches: one crossing into C for many messages

    def send_many(
        self,
        messages: Union[Sequence[Union[bytes, str, Buffer]], Buffer],
        type: int = 1,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> int:
        """Queue a sequence of messages of one type, in order, in one call into C (msgsnd(2) each).

        Every message is checked before the first is sent: its type and
        buffer, and its length against kernel.msgmax and the queue's max_size.
        ``timeout`` bounds the whole call.

        Args:
            messages: a sequence (list, tuple) of bytes, buffers or str. Not an
                iterator: what was not sent must still be in the caller's hands.
                With ``lengths``: one C-contiguous buffer holding the texts end
                to end, which is not copied before C copies each text into the
                message buffer msgsnd reads. A list of bytes is copied once
                either way: up to four, C copies each where it is into the
                message buffer; more are joined with the type between them,
                and msgsnd reads each text where the join put it.
            lengths: the length of each text in ``messages``, in bytes; they
                must add up to its size.

        Returns:
            How many were queued: all of them, unless ``block=False`` stopped at a full queue.

        Raises:
            QueueFull: ``block=False`` and not even the first fitted, or ``timeout`` passed.
            MessageTooLarge: one is longer than kernel.msgmax or than the
                queue's max_size: nothing is sent (should max_size be lowered
                while the call waits, ``count`` says what was).

        Any exception raised out of ``send_many``, a signal handler's too,
        carries ``count``: how many were queued, so that
        ``messages[exc.count:]`` (or ``lengths[exc.count:]``) is what was not.
        """
        # The fast path: a list of bytes, an exact int type, no timeout, no lengths; checked inline,
        # since a batch of two 8 KiB messages must not pay more in Python than in C. Up to
        # SYSVMQ_FEW texts go to C each where it is (a join would copy them all once more).
        if (
            _type(messages) is list  # the real type: a faked __class__ could slice into anything
            and lengths is None
            and timeout is None
            and (type is _ONE or (type.__class__ is int and 0 < type <= LONG_MAX))
        ):
            total = len(messages)
            if total <= _FEW:
                # A copy padded to SYSVMQ_FEW: what the caller's list says after this, C does not see.
                m = messages + _PADS[total]
                t0, t1, t2, t3 = m if len(m) == _FEW else _NOT_FEW  # not if another thread grew the list
                if _type(t0) is bytes and _type(t1) is bytes and _type(t2) is bytes and _type(t3) is bytes:
                    if not total:
                        return 0
                    cap = self._capacity
                    calls = self._calls
                    try:
                        call = calls.pop()
                    except IndexError:
                        call = self._pool.call()
                    c = queued = None  # c: bound as C is entered; queued: how many, once the call is done
                    try:
                        # c comes last, after the len() calls: a handler may run at a call.
                        n = _c_send_few(
                            type,
                            total,
                            cap.longest,
                            cap.until,
                            t0,
                            len(t0),
                            t1,
                            len(t1),
                            t2,
                            len(t2),
                            t3,
                            len(t3),
                            c := call.c,
                        )
                        if n == total:
                            queued = total
                            calls.append(call)
                            if PYPY:
                                for _ in _ONE_TURN:
                                    pass
                            return total
                        texts = m[:total]
                        blob = b"".join(texts)
                        lens = _array(SIZE_T, map(len, texts))
                        queued = self._send_rest(call, n, type, blob, lens, None, 0, not block, None)
                        self._pool.give_back(call)
                        if PYPY:
                            for _ in _ONE_TURN:
                                pass
                        return queued
                    except BaseException as exc:
                        self._count_out(exc, queued, call, c)
                        raise
            # One snapshot of a real list, read three times, and its count: another thread changing
            # the list cannot make the count, the lengths and the joined texts disagree. C checks
            # that they add up anyway (-2 if not: the general path sends them), so that nothing
            # this path missed can make it read past the join's end.
            elif (joined := _joined(messages[:], _ONE_BYTES if type is _ONE else _type_bytes(type))) is not None:
                many_lens, blob = joined
                total = len(many_lens)  # the snapshot's count: the list may have changed since len()
                sizes = _from_buffer(_SIZES, many_lens)
                cap = self._capacity
                calls = self._calls
                try:
                    call = calls.pop()
                except IndexError:
                    call = self._pool.call()
                c = queued = None
                try:
                    n = _c_send_batch(
                        c := call.c, type, blob, len(blob), sizes, total, _LONG_SIZE, cap.longest, cap.until
                    )
                    if n == total:
                        queued = total
                        calls.append(call)
                        if PYPY:
                            for _ in _ONE_TURN:
                                pass
                        return total
                    if n != -2:
                        queued = self._send_rest(call, n, type, blob, many_lens, sizes, _LONG_SIZE, not block, None)
                        self._pool.give_back(call)
                        if PYPY:
                            for _ in _ONE_TURN:
                                pass
                        return queued
                    queued = 0  # nothing tried: the general path below
                    calls.append(call)
                except BaseException as exc:
                    self._count_out(exc, queued, call, c)
                    raise
        # The texts end to end in a bytes or bytearray, their lengths in a list of ints: checked
        # inline too. Anything this path refuses (a length that is no size_t, lengths that do not
        # add up: -2 from C, nothing sent) goes to the general path, which says what is wrong.
        elif (
            lengths.__class__ is list
            and timeout is None
            and (type is _ONE or (type.__class__ is int and 0 < type <= LONG_MAX))
            and ((kind := _type(messages)) is bytes or kind is bytearray)
        ):
            try:
                lens = _array(SIZE_T, lengths)
            except (TypeError, OverflowError):
                lens = None
            if lens:
                cap = self._capacity
                calls = self._calls
                try:
                    call = calls.pop()
                except IndexError:
                    call = self._pool.call()
                c = queued = borrowed = None
                total = len(lens)
                try:
                    sizes = _from_buffer(_SIZES, lens)
                    # A bytearray's buffer is exported: it cannot be resized while C reads it. Released
                    # before each return, not in a finally clause (see _send_many); twice is harmless.
                    flat = borrowed = _from_buffer(_CHARS, messages) if kind is bytearray else messages
                    n = _c_send_batch(c := call.c, type, flat, len(flat), sizes, total, 0, cap.longest, cap.until)
                    if n == total:
                        queued = total
                        calls.append(call)
                        if kind is bytearray:
                            _release_buffer(borrowed)
                        if PYPY:
                            for _ in _ONE_TURN:
                                pass
                        return total
                    if n != -2:
                        queued = self._send_rest(call, n, type, flat, lens, sizes, 0, not block, None)
                        self._pool.give_back(call)
                        if kind is bytearray:
                            _release_buffer(borrowed)
                        if PYPY:
                            for _ in _ONE_TURN:
                                pass
                        return queued
                    queued = 0  # nothing tried: the general path below says why
                    calls.append(call)
                    if kind is bytearray:
                        _release_buffer(borrowed)
                except BaseException as exc:
                    self._count_out(exc, queued, call, c)
                    if kind is bytearray and borrowed is not None:
                        _release_buffer(borrowed)
                    raise
        box: List[int] = []  # what _send_many queued, as it returns: a handler may raise there (PyPy)
        try:
            return self._send_many(messages, type, block, timeout, lengths, box)
        except BaseException as exc:
            if box:
                carry_count(exc, box[0])
            raise

    def _count_out(self, exc: BaseException, queued: Optional[int], call: Call, c: Any) -> None:
        """send_many's except clause: ``exc`` gets ``count``, and the call state goes back to the pool.

        ``queued`` is how many, once the call was done (it gave the state back itself); else C
        recorded them in the state, if it was entered (``c`` bound as the crossing started).
        """
        if queued is not None:  # the call may be back in the pool: leave it there
            carry_count(exc, queued)
        else:
            carry_count(exc, 0 if c is None else call.c.done)
            self._pool.give_back(call)

    def _send_many(self, messages: Any, type: Any, block: bool, timeout: Any, lengths: Any, box: List[int]) -> int:
        """send_many in full: other sequences and types, buffers, a timeout, one buffer and its lengths."""
        t = send_type_arg(type)
        nowait = not block
        wait = None if timeout is None else timeout_arg(timeout, nowait)
        borrowed = None
        if lengths is None:
            known = _byte_lengths(texts := messages[:]) if _type(messages) is list else None
            if known is not None:
                blob, lens = b"".join(texts), known  # one snapshot, as above
            else:
                messages_arg(messages)
                blob, lens = pack(messages)
            sizes = _from_buffer(_SIZES, lens)
        else:  # the texts end to end in one buffer: borrowed, not copied
            if isinstance(messages, (str, list, tuple)):
                raise TypeError(
                    "with lengths, messages must be one bytes-like object holding the texts end to end"
                    f" (lengths count its bytes), not {messages.__class__.__name__}"
                )
            blob = borrowed = borrow(messages, "messages", writable=False)
        # A borrowed buffer is released before each return, not in a finally clause: a handler
        # that raised there would leave the call without its except clause, and ``count``.
        try:
            if borrowed is not None:
                lens = lengths_arg(lengths, len(blob))
                sizes = _from_buffer(_SIZES, lens)
            total = len(lens)
            if not total:
                if borrowed is not None:
                    _release_buffer(borrowed)
                return 0
            cap = self._capacity
            call = self._pool.call()
            c = queued = None  # c: bound as C is entered; queued: how many, once the call is done
            try:
                n = _c_send_batch(c := call.c, t, blob, len(blob), sizes, total, 0, cap.longest, cap.until)
                queued = total if n == total else self._send_rest(call, n, t, blob, lens, sizes, 0, nowait, wait)
                self._pool.give_back(call)
                if borrowed is not None:
                    _release_buffer(borrowed)
                box.append(queued)
                if PYPY:
                    for _ in _ONE_TURN:
                        pass
                return queued
            except BaseException as exc:
                self._count_out(exc, queued, call, c)
                raise
        except BaseException:
            if borrowed is not None:
                _release_buffer(borrowed)
            raise

    def _send_rest(
        self,
        call: Call,
        n: int,
        t: int,
        blob: Any,
        lens: "array.array[int]",
        sizes: Any,
        gap: int,
        nowait: bool,
        wait: Optional[float],
    ) -> int:
        """send_many after a first crossing that did not queue every text: how many it queued in the end.

        ``n`` is what the crossing returned: -1 if it refused (a text too long by the reading or
        for the state's room, or the reading stale), else how many it queued. ``blob`` holds the
        texts, ``gap`` bytes between each two (0, or the type's: see sysvmq_send_many), ``lens``
        their lengths (``sizes`` over them, or None). Raises with the
        call in ``call.c`` saying what was queued; the caller gives the call back.
        """
        total = len(lens)
        if sizes is None:
            sizes = _from_buffer(_SIZES, lens)
        c = call.c
        if n < 0:  # nothing sent: check here, saying which message, then send unchecked
            cap = self._capacity.current()
            longest = max(lens)
            if longest > cap.longest:
                self._check_fits(longest, f"messages[{lens.index(longest)}]", "send_many")
            if longest > call.room:
                call.grow(longest)
            n = _c_send_many(c := call.c, t, blob, sizes, total, gap, IPC_NOWAIT)
            if n == total:
                return total
        # sysvmq_again reads the texts again: give it pointers that last (see data in _helpers.h).
        c.data = keep = blob if blob.__class__ is not bytes else _from_buffer(_CHARS, blob)
        c.lens = sizes
        err = finish(call, c.err, nowait, deadline_of(wait), _partial(self._check_rest, call, lens))
        del keep
        done = int(c.done)
        if err and not (err == _EAGAIN and nowait and done):
            raise self._send_error(err, lens[done], wait)
        return done

    def _check_rest(self, call: Call, lens: "array.array[int]") -> None:
        """Before send_many waits: what is left must fit the queue's max_size."""
        done = call.c.done
        rest = lens[done:]
        longest = max(rest)
        self._check_fits(longest, f"messages[{done + rest.index(longest)}]", "send_many", fresh=True)

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

        Any exception raised out of it, a signal handler's too, carries
        ``received``: the messages taken, as ``Message(data, type)``, in order.
        """
        # The fast path: one crossing, sure to take all it may (see Batch.sure), no timeout.
        if (
            max_count.__class__ is int
            and block
            and timeout is None
            and not truncate
            and (type is _ZERO or type.__class__ is int)
        ):
            batches = self._batches
            try:
                b = batches.pop()
            except IndexError:
                b = None
            if b is not None:
                if 0 < max_count <= b.sure:
                    m = result = None
                    try:
                        try:
                            n = _c_receive_many(m := b.c, type, 0, max_count)
                        except OverflowError:  # a type beyond C long: the general path says so
                            m, n = None, -2
                        if n > 0:  # all asked for, or all there were: C stops at nothing else here
                            types = b.rawtypes[: n * _LONG_SIZE]  # one copy, for received should an exception come
                            if n <= b.cut_most:  # the struct of the last batch's format, if this one has the same
                                result = list((b.cut if b.gen[0] == b.seen else b.cutter())(b.view))
                            else:
                                result = _split(b, n)
                            batches.append(b)
                            if PYPY:
                                for _ in _ONE_TURN:
                                    pass
                            return result
                    except BaseException as exc:
                        if result is not None:  # b may be back in the pool: what was read stands
                            carry_received(exc, _messages(result, _memoryview(types).cast("l").tolist()))
                        else:
                            carry_received(exc, _many_taken(b, False, [], [], m is not None))
                            batches.append(b)
                        raise
                batches.append(b)  # nothing taken (interrupted, or an error): the general path goes on, or says why
        box: List[Any] = []
        try:
            got = self._receive_many(max_count, type, block, timeout, truncate, False, box)
            if PYPY:
                for _ in _ONE_TURN:
                    pass
            return got  # type: ignore[return-value]
        except BaseException as exc:
            _returned(exc, box, False)
            raise

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
        # The fast path: one crossing, sure to take all it may (see Batch.sure), no timeout.
        if (
            max_count.__class__ is int
            and block
            and timeout is None
            and not truncate
            and (type is _ZERO or type.__class__ is int)
        ):
            batches = self._batches
            try:
                b = batches.pop()
            except IndexError:
                b = None
            if b is not None:
                if 0 < max_count <= b.sure:
                    m = result = None
                    try:
                        try:
                            n = _c_receive_many(m := b.c, type, 0, max_count)
                        except OverflowError:  # a type beyond C long: the general path says so
                            m, n = None, -2
                        if n > 0:  # all asked for, or all there were: C stops at nothing else here
                            if n <= b.cut_most:  # the struct of the last batch's format, if this one has the same
                                texts = (b.cut if b.gen[0] == b.seen else b.cutter())(b.view)
                            else:
                                texts = _split(b, n)
                            if PYPY:  # a loop its JIT compiles: reading C's types through a view costs more
                                types = b.c.types
                                result = [_new_tuple(Message, (texts[i], types[i])) for i in range(n)]
                            else:  # zip stops at the n texts, before it reads the view's (n+1)th type
                                result = list(map(_new_tuple, _MESSAGE_EVER, zip(texts, b.types)))
                            batches.append(b)
                            if PYPY:
                                for _ in _ONE_TURN:
                                    pass
                            return result
                    except BaseException as exc:
                        if result is not None:  # b may be back in the pool: what was read stands
                            carry_received(exc, result)
                        else:
                            carry_received(exc, _many_taken(b, True, [], [], m is not None))
                            batches.append(b)
                        raise
                batches.append(b)  # nothing taken (interrupted, or an error): the general path goes on, or says why
        box: List[Any] = []
        try:
            got = self._receive_many(max_count, type, block, timeout, truncate, True, box)
            if PYPY:
                for _ in _ONE_TURN:
                    pass
            return got  # type: ignore[return-value]
        except BaseException as exc:
            _returned(exc, box, True)
            raise

    def _receive_many(
        self,
        max_count: object,
        mtype: object,
        block: bool,
        timeout: object,
        truncate: bool,
        typed: bool,
        box: List[Any],
    ) -> Union[List[bytes], List[Message]]:
        """receive_many in full. What it returns, it also puts in ``box`` first, with the types,
        for its caller's except clause: where a handler may run between any two bytecodes
        (``_calls.ANYWHERE``), one may raise as this returns, before the caller does."""
        count = max_count if max_count.__class__ is int and max_count >= 1 else max_count_arg(max_count)
        t = mtype if mtype.__class__ is int and LONG_MIN <= mtype <= LONG_MAX else receive_type_arg(mtype)
        f = (MSG_NOERROR if truncate else 0) | (0 if block else IPC_NOWAIT)
        wait = None
        if timeout is not None:
            wait = timeout_arg(timeout, not block)
            if wait is not None:
                f |= IPC_NOWAIT  # a timed call waits only after a try
        k = count if count < BATCH_COUNT else BATCH_COUNT  # min() costs a call per batch
        batches = self._batches
        try:
            b = batches.pop()
        except IndexError:
            b = Batch(self._id, self._buffer_size, max(k, BATCH_WANTED))
        if b.capacity < k:
            b = Batch(self._id, self._buffer_size, max(k, BATCH_WANTED))
        result: List[Any] = []
        kept: Optional[List[int]] = None  # untyped: the types of result[:len(kept)], for ``received``
        m = None  # the state, bound as a crossing starts, None once what it took is in result
        before = 0  # len(result) as the crossing started
        done = False  # b goes back to the pool: result (and kept) say what was taken
        try:
            c, view, fmt = b.call.c, b.view, b.fmt
            want = k
            while True:
                n = _c_receive_many(m := c, t, f, want)
                if n <= 0:
                    if result:
                        break  # the next call meets this condition again
                    err = finish(b.call, c.err, bool(f & IPC_NOWAIT) and wait is None, deadline_of(wait))
                    if err:
                        raise self._receive_error(err, t, f, self._buffer_size, wait)
                    n = c.done  # the wait took the first messages
                texts: Sequence[Any] = _split(b, n) if fmt is None else _unpack_from(_string(fmt), view)
                if typed:
                    texts = _messages(texts, _unpack(c.types, n))
                result += texts  # one step: no handler runs between its items
                m = None
                before = len(result)
                if not typed:  # the types of what result holds, for received should an exception come
                    kept = (kept or []) + _unpack(c.types, n)
                # Go on only if it stopped at its count or its room (err 0), not for want of messages.
                if before == count or (n < want and c.err):
                    break
                want = count - before
                if want > k:
                    want = k
                f |= IPC_NOWAIT  # it holds messages now: never wait again
            done = True
            batches.append(b)
            box.append((result, kept))
            return result
        except BaseException as exc:
            if done:  # b may be back in the pool: what was read stands
                carry_received(exc, result if typed else _messages(result, kept or []))
            else:
                pending = m is not None and len(result) == before
                carry_received(exc, _many_taken(b, typed, result, kept or [], pending))
                batches.append(b)
            raise

    def peek(self, index: int = 0, *, truncate: bool = False) -> Message:
        """Copy the index-th message (0 is the oldest) without taking it off the queue.

        Uses msgrcv's MSG_COPY (Linux 3.8+, kernels built with CONFIG_CHECKPOINT_RESTORE).

        Raises:
            QueueEmpty: the queue holds no message at ``index``.
            MessageTooLarge: the message is longer than ``buffer_size`` (unless ``truncate``).
            UnsupportedOperation: the platform or kernel lacks MSG_COPY.
        """
        i = index_arg(index)
        where = f"peek at index {i} of {self._describe()}"
        if not HAS_MSG_COPY:
            raise UnsupportedOperation(errno.ENOSYS, f"{where}: MSG_COPY is Linux-only")
        # The kernel will not truncate a copy (copy_msg answers EINVAL, not
        # what MSG_NOERROR promises): copy it whole, at most msgmax, and cut here.
        size = max(msgmax(), self._buffer_size) if truncate else self._buffer_size
        call = self._pool.call(size)
        try:
            n = _c_receive(call.c, i, IPC_NOWAIT | MSG_COPY, _NULL, size)
            if n >= 0:
                return Message(call.text[0 : min(n, self._buffer_size)], call.mtype[0])
            err = call.c.err
        finally:
            self._pool.give_back(call)
        if err == errno.ENOMSG:
            raise QueueEmpty(err, f"{where}: the queue holds no message there")
        if err == errno.ENOSYS:
            raise UnsupportedOperation(err, f"{where}: the kernel lacks MSG_COPY (CONFIG_CHECKPOINT_RESTORE)")
        raise self._receive_error(err, 0, 0, size, None)

    # control

    def stats(self) -> QueueStats:
        """One ``msgctl(IPC_STAT)`` snapshot of the queue (msgctl(2)).

        Raises:
            QueuePermissionError: no read permission on the queue.
            QueueRemoved: the queue is gone.
        """
        err, st = stats(self._id)
        if st is None:
            raise self._ctl_error(err, "IPC_STAT", NO_READ)
        return st

    def update(
        self,
        *,
        max_size: Optional[int] = None,
        mode: Optional[int] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
    ) -> None:
        """Change the queue's max_size, permission bits or owner, in one ``msgctl(IPC_SET)`` (msgctl(2)).

        IPC_SET writes all four at once; the ones not given keep their
        current values, read with IPC_STAT, or with MSG_STAT_ANY where the
        owner may not read the queue.

        Args:
            max_size: the most bytes the queue holds (msg_qbytes), 1..2**31-1
                (the kernel keeps an int); above kernel.msgmnb needs CAP_SYS_RESOURCE.
            mode: permission bits, 0..0o777.
            uid, gid: the new owner.

        Raises:
            QueuePermissionError: not the owner or creator (nor CAP_SYS_ADMIN),
                or a max_size above kernel.msgmnb without CAP_SYS_RESOURCE
                (which is also the queue's current one, written back, if it
                is above msgmnb).
        """
        if max_size is None and mode is None and uid is None and gid is None:
            raise ValueError("update() needs at least one of max_size, mode, uid, gid")
        qbytes = None if max_size is None else max_size_arg(max_size)
        perms = None if mode is None else mode_arg(mode)
        new_uid = None if uid is None else owner_arg("uid", uid)
        new_gid = None if gid is None else owner_arg("gid", gid)
        err, ds = ipc_stat(self._id)
        if ds is None and err in (errno.EACCES, errno.EPERM) and HAS_MSG_STAT_ANY:
            ds = ffi.new(MSQID_DS_P)
            if lib.msgctl(self._id, MSG_STAT_ANY, ds) != self._id:
                ds = None
        if ds is None:
            raise self._ctl_error(err, "IPC_STAT", NO_READ)
        current = int(ds.msg_qbytes)
        if qbytes is not None:
            ds.msg_qbytes = qbytes
        if perms is not None:
            ds.msg_perm.mode = (ds.msg_perm.mode & ~0o777) | perms
        if new_uid is not None:
            ds.msg_perm.uid = new_uid
        if new_gid is not None:
            ds.msg_perm.gid = new_gid
        if lib.msgctl(self._id, IPC_SET, ds) < 0:
            err = ffi.errno
            detail = NOT_OWNER_SET
            owner = os.geteuid() in (int(ds.msg_perm.uid), int(ds.msg_perm.cuid))
            limit = msgmnb()
            if err == errno.EPERM and owner and limit is not None:
                if qbytes is not None and qbytes > limit:
                    detail = raise_above_msgmnb(limit)
                elif qbytes is None and current > limit:
                    detail = keep_above_msgmnb(current, limit)
            raise self._ctl_error(err, "IPC_SET", detail)
        # After IPC_SET, not before: a send between would read the old value again.
        self._capacity.set(int(ds.msg_qbytes))

    def destroy(self) -> None:
        """Remove the queue (``msgctl(IPC_RMID)``); its messages are lost and waiters get QueueRemoved.

        Raises:
            QueuePermissionError: not the owner or creator, nor CAP_SYS_ADMIN.
            QueueRemoved: the queue is gone already.
        """
        if lib.msgctl(self._id, IPC_RMID, ffi.NULL) < 0:
            raise self._ctl_error(ffi.errno, "IPC_RMID", NOT_OWNER_RMID)

    def _ctl_error(self, err: int, cmd: str, denied: str) -> SysVMQError:
        return self._error(err, f"msgctl({cmd}) on {self._describe()}", denied)

    def _error(self, err: int, where: str, denied: str) -> SysVMQError:
        """The exception for what a call on this queue left in errno; ``denied`` says what EACCES/EPERM refused."""
        if err == errno.EINVAL:
            # EINVAL means a bad argument, or an id that names no queue any more: look.
            gone, _ = ipc_stat(self._id)
            if gone in (errno.EINVAL, errno.EIDRM):
                return queue_removed(where)
            return error_from_errno(errno.EINVAL, where)
        if err in (errno.EACCES, errno.EPERM):
            return error_from_errno(err, where, denied)
        return error_from_errno(err, where)


def _returned(exc: BaseException, box: List[Any], typed: bool) -> None:
    """receive_many's general path had returned its messages (in ``box``) when ``exc`` was raised."""
    if box:
        result, kept = box[0]
        carry_received(exc, result if typed else _messages(result, kept or []))


def _taken(call: Call) -> List[Message]:
    """What a single receive had taken when an exception left it: the state says."""
    c = call.c
    n = c.len
    if c.op != _RECEIVE or n < 0:
        return []
    return [Message(call.text[:n], call.mtype[0])]


def _many_taken(b: Batch, typed: bool, result: List[Any], kept: List[int], pending: bool) -> List[Message]:
    """What a receive_many had taken when an exception left it: ``result``, and the state's last crossing
    if ``pending`` (taken but not yet in ``result``). The state holds the types of the last crossing."""
    c = b.call.c
    n = c.done
    last = (_split(b, n) if b.fmt is None else list(_unpack_from(_string(b.fmt), b.view))) if pending and n else []
    types = _unpack(c.types, n) if n else []
    if typed:
        return result + _messages(last, types)
    texts = result + last
    tail = len(texts) - len(kept)  # the last crossing's messages among texts
    return _messages(texts, kept + types[len(types) - tail :])
