"""The exception classes, the one errno -> exception table, and the wording of every kernel error.

Each class mixes in the builtin a caller would already catch (``queue.Empty``,
``FileNotFoundError``, ...), and carries one ``errno`` whatever the kernel said,
so that a receive timeout and an empty queue are the same ``QueueEmpty``.

Messages name the queue, the problem and the number that matters: "a message
of 9000 bytes exceeds kernel.msgmax (8192)", not "Invalid argument". Argument
checks, which fail before any system call, word their own errors in ``_args``.
"""

import contextlib
import errno as _errno
import os
import queue
from typing import Dict, List, Optional, Sequence, Type

from ._ffi import LONG_MAX
from ._stats import Message

__all__ = [
    "SysVMQError",
    "QueueEmpty",
    "QueueFull",
    "QueueRemoved",
    "QueueNotFound",
    "QueueExists",
    "QueuePermissionError",
    "MessageTooLarge",
    "UnsupportedOperation",
    "error_from_errno",
]


class SysVMQError(OSError):
    """Base class of every error raised by sysvmq for a failed queue operation.

    ``errno`` and ``strerror`` are those of ``OSError``. Raised out of a send,
    it carries ``count``; out of a receive, ``received`` (see ``carry_count``
    and ``carry_received``), as any other exception raised out of those calls does.
    """

    #: The errno every instance carries; ``None`` keeps the kernel's.
    fixed_errno: Optional[int] = None
    #: Messages a send or send_many queued before this error (0: none).
    count: int = 0
    #: Messages a receive took before this error, in the order taken (empty: none).
    received: Sequence[Message] = ()


class QueueEmpty(SysVMQError, queue.Empty):
    """No message matches (non-blocking receive or ``peek``), or a receive timed out."""

    fixed_errno = _errno.ENOMSG


class QueueFull(SysVMQError, queue.Full):
    """The queue has no room (non-blocking send), or a send timed out."""

    fixed_errno = _errno.EAGAIN


class QueueRemoved(SysVMQError):
    """The queue was removed, before or while the call waited on it."""

    fixed_errno = _errno.EIDRM


class QueueNotFound(SysVMQError, FileNotFoundError):
    """No queue has that key or id."""

    fixed_errno = _errno.ENOENT


class QueueExists(SysVMQError, FileExistsError):
    """An exclusive create found a queue with that key already."""

    fixed_errno = _errno.EEXIST


class QueuePermissionError(SysVMQError, PermissionError):
    """The caller lacks the permission or capability; errno is EACCES or EPERM as the kernel said."""


class MessageTooLarge(SysVMQError):
    """A message does not fit: longer than kernel.msgmax or the queue's max_size, or than the receive buffer."""

    fixed_errno = _errno.E2BIG


class UnsupportedOperation(SysVMQError, NotImplementedError):
    """The platform or the running kernel lacks the operation."""

    fixed_errno = _errno.ENOSYS


# The one table. EINVAL is not here: whether it means "bad argument" or "queue
# gone" takes a second look at the queue, which only the caller can make.
ERRNO_TO_EXCEPTION: Dict[int, Type[SysVMQError]] = {
    _errno.ENOMSG: QueueEmpty,
    _errno.EAGAIN: QueueFull,
    _errno.EIDRM: QueueRemoved,
    _errno.ENOENT: QueueNotFound,
    _errno.EEXIST: QueueExists,
    _errno.EACCES: QueuePermissionError,
    _errno.EPERM: QueuePermissionError,
    _errno.E2BIG: MessageTooLarge,
    _errno.ENOSYS: UnsupportedOperation,
}


def error_from_errno(
    err: int,
    context: str,
    detail: Optional[str] = None,
    cls: Optional[Type[SysVMQError]] = None,
) -> SysVMQError:
    """Build the exception for ``err``, to be raised by the caller.

    Args:
        err: the errno the failing call left.
        context: what failed, naming the queue: ``"msgrcv on queue 5 (key 0x1)"``.
        detail: what to say instead of strerror, naming the limit involved.
        cls: the class to use instead of the table's choice.

    Returns:
        An instance of ``cls`` or of the table's class (``SysVMQError`` for an
        errno the table does not know), with the class's fixed errno if it has one.
    """
    if cls is None:
        cls = ERRNO_TO_EXCEPTION.get(err, SysVMQError)
    code = cls.fixed_errno if cls.fixed_errno is not None else err
    return cls(code, f"{context}: {detail or os.strerror(err)}")


# -- what a call had done when an exception left it ----------------------------


def carry_count(exc: BaseException, count: int) -> None:
    """Say on ``exc``, whatever its class, how many messages the send had queued."""
    with contextlib.suppress(AttributeError):  # an exception that takes no attributes: nowhere to say it
        exc.count = count  # type: ignore[attr-defined]


def carry_received(exc: BaseException, messages: List[Message]) -> None:
    """Say on ``exc``, whatever its class, which messages the receive had taken."""
    with contextlib.suppress(AttributeError):
        exc.received = messages  # type: ignore[attr-defined]


# -- the wording ------------------------------------------------------------------


def describe_queue(msqid: int, key: int) -> str:
    """``queue 5 (key 0x0000abcd)``, or ``queue 5 (private)``."""
    return f"queue {msqid} ({'private' if key == 0 else f'key {key:#010x}'})"


def within(timeout: Optional[float]) -> str:
    return f" within {timeout:g} s" if timeout else ""


def selector(mtype: int, except_: bool) -> str:
    """How a receive's type selects, for "no message of type 3"."""
    if mtype == 0:
        return ""
    if mtype < 0:  # the kernel reads LONG_MIN as <= LONG_MAX: -LONG_MIN is no long
        return f" of type <= {min(-mtype, LONG_MAX)}"
    if except_:
        return f" of a type other than {mtype}"
    return f" of type {mtype}"


def queue_removed(where: str) -> QueueRemoved:
    return QueueRemoved(_errno.EIDRM, f"{where}: the queue no longer exists")


def queue_empty(where: str, mtype: int, except_: bool, timeout: Optional[float]) -> QueueEmpty:
    return QueueEmpty(_errno.ENOMSG, f"{where}: no message{selector(mtype, except_)}{within(timeout)}")


def queue_full(
    where: str, size: int, timeout: Optional[float], count: int, used: int, max_size: Optional[int]
) -> QueueFull:
    """No room: by bytes, or by count (Linux also caps the number of messages at max_size)."""
    detail = f"no room for a {size}-byte message{within(timeout)}"
    if max_size is not None:
        if count >= max_size:
            detail += (
                f": the queue holds {count} message{'s' * (count != 1)}, the most its max_size ({max_size}) allows, "
                "since Linux also caps the number of messages at max_size"
            )
        else:
            detail += f": {used} of its max_size ({max_size}) bytes are in use"
    return QueueFull(_errno.EAGAIN, f"{where}: {detail}")


def exceeds_msgmax(where: str, size: int, msgmax: int, which: str = "a message") -> MessageTooLarge:
    return MessageTooLarge(
        _errno.E2BIG,
        f"{where}: {which} of {size} bytes exceeds kernel.msgmax ({msgmax}) and could never be "
        "queued; raise the sysctl to send it",
    )


def exceeds_max_size(where: str, size: int, max_size: int, msgmnb: int, which: str = "a message") -> MessageTooLarge:
    return MessageTooLarge(
        _errno.E2BIG,
        f"{where}: {which} of {size} bytes exceeds the queue's max_size ({max_size}) and could "
        f"never be queued; raise it with update(max_size=...) up to kernel.msgmnb ({msgmnb}), "
        "beyond that with the sysctl or CAP_SYS_RESOURCE",
    )


def longer_than_buffer(where: str, mtype: int, except_: bool, size: int) -> MessageTooLarge:
    return MessageTooLarge(
        _errno.E2BIG,
        f"{where}: the next message{selector(mtype, except_)} is longer than the {size}-byte "
        "buffer and stays queued; pass truncate=True or a larger buffer",
    )


def msgget_error(err: int, key: int, msgmni: Optional[int]) -> SysVMQError:
    where = f"msgget of key {key:#010x}"
    if err == _errno.ENOENT:
        detail: Optional[str] = "no queue has this key (pass IPC_CREAT, or use SysVMQ.create, to create one)"
    elif err == _errno.EEXIST:
        detail = "a queue has this key already (IPC_EXCL)"
    elif err == _errno.ENOSPC:
        detail = f"kernel.msgmni ({msgmni if msgmni is not None else '?'}) queues exist already"
    else:
        detail = None
    return error_from_errno(err, where, detail)


NO_READ = "no read permission"
NO_WRITE = "no write permission"
NOT_OWNER_SET = "only the owner or creator, or CAP_SYS_ADMIN, may change the queue"
NOT_OWNER_RMID = "only the owner or creator, or CAP_SYS_ADMIN, may remove the queue"


def raise_above_msgmnb(msgmnb: int) -> str:
    return f"raising max_size above kernel.msgmnb ({msgmnb}) needs CAP_SYS_RESOURCE"


def keep_above_msgmnb(current: int, msgmnb: int) -> str:
    return (
        f"the queue's max_size ({current}) is above kernel.msgmnb ({msgmnb}), and IPC_SET writes "
        f"it back: that needs CAP_SYS_RESOURCE; pass max_size={msgmnb} or less with the change"
    )
