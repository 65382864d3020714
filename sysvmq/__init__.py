"""System V message queues for Python: msgget, msgsnd, msgrcv and msgctl through CFFI.

>>> import sysvmq
>>> q = sysvmq.SysVMQ.private()
>>> q.send(b"hello", type=2)
>>> q.receive_message()
Message(data=b'hello', type=2)
>>> q.destroy()
"""

import sys
from typing import Any

from . import _wait
from ._errors import (
    MessageTooLarge,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    QueuePermissionError,
    QueueRemoved,
    SysVMQError,
    UnsupportedOperation,
)
from ._ffi import (
    HAS_IPC_INFO,
    HAS_MSG_COPY,
    HAS_MSG_EXCEPT,
    HAS_MSG_INFO,
    HAS_MSG_STAT,
    HAS_MSG_STAT_ANY,
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    MSG_NOERROR,
)
from ._kernel import ftok, limits, queues, usage
from ._queue import SysVMQ
from ._stats import Limits, Message, QueueStats, Usage
from ._wait import set_timer_signal

__version__ = "0.1.0"

__all__ = [
    "SysVMQ",
    "Message",
    "QueueStats",
    "Limits",
    "Usage",
    "ftok",
    "limits",
    "usage",
    "queues",
    "set_timer_signal",
    "timed_wait",
    "timer_signal",
    "SysVMQError",
    "QueueEmpty",
    "QueueFull",
    "QueueRemoved",
    "QueueNotFound",
    "QueueExists",
    "QueuePermissionError",
    "MessageTooLarge",
    "UnsupportedOperation",
    "IPC_PRIVATE",
    "IPC_CREAT",
    "IPC_EXCL",
    "IPC_NOWAIT",
    "IPC_RMID",
    "IPC_SET",
    "IPC_STAT",
    "MSG_NOERROR",
    "HAS_IPC_INFO",
    "HAS_MSG_INFO",
    "HAS_MSG_STAT",
    "HAS_MSG_STAT_ANY",
    "HAS_MSG_EXCEPT",
    "HAS_MSG_COPY",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``timed_wait`` and ``timer_signal``: how timed calls wait, read anew each time (see _wait).

    ``sysvmq.timed_wait`` is ``"timer"`` when timed calls block in the kernel
    until a POSIX timer's signal ends them, ``"poll"`` when they make
    non-blocking tries with sleeps between; ``sysvmq.timer_signal`` is the
    signal the timer uses, or None.
    """
    if name == "timed_wait":
        return _wait.timed_wait()
    if name == "timer_signal":
        return _wait.timer_signal()
    raise AttributeError(f"module 'sysvmq' has no attribute {name!r}")


# Linux's extra msgctl commands and msgrcv flags exist only there (HAS_* say so at run time).
if sys.platform == "linux":
    from ._ffi import IPC_INFO, MSG_COPY, MSG_EXCEPT, MSG_INFO, MSG_STAT, MSG_STAT_ANY

    __all__ += ["IPC_INFO", "MSG_INFO", "MSG_STAT", "MSG_STAT_ANY", "MSG_EXCEPT", "MSG_COPY"]
