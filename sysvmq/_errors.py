"""The exception classes and the one errno -> exception table.

Each class mixes in the builtin a caller would already catch (``queue.Empty``,
``FileNotFoundError``, ...), and carries one ``errno`` whatever the kernel said,
so that a receive timeout and an empty queue are the same ``QueueEmpty``.
"""

import errno as _errno
import os
import queue
from typing import Dict, Optional, Type

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

    ``errno`` and ``strerror`` are those of ``OSError``; ``count`` is set by
    batch calls to the number of messages they had already moved.
    """

    #: The errno every instance carries; ``None`` keeps the kernel's.
    fixed_errno: Optional[int] = None
    #: Messages a batch call moved before this error; ``None`` for single calls.
    count: Optional[int] = None


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
