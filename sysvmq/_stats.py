"""Snapshots of kernel state: QueueStats from ``struct msqid_ds``, Limits and Usage from msginfo.

These are plain values. The C structs arrive here already filled by
``msgctl(2)`` in ``_queue``; nothing in this module calls into C.
"""

from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Optional

__all__ = [
    "Message",
    "QueueStats",
    "Limits",
    "Usage",
    "stats_from_msqid_ds",
    "limits_from_msginfo",
    "usage_from_msginfo",
]


class Message(NamedTuple):
    """A received message: its bytes and its type."""

    data: bytes
    type: int


@dataclass(frozen=True)
class QueueStats:
    """One ``msgctl(IPC_STAT)`` snapshot of a queue.

    Times are whole seconds since the epoch, 0 for never; ``size`` is the
    bytes queued now and ``max_size`` the queue's limit (``msg_qbytes``).
    """

    id: int
    key: int
    count: int
    size: int
    max_size: int
    last_send_time: int
    last_receive_time: int
    last_change_time: int
    last_send_pid: int
    last_receive_pid: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    mode: int

    def __repr__(self) -> str:
        # Permission bits read as chmod writes them: mode=0o600, not mode=384.
        shown = (
            f"{f.name}={getattr(self, f.name):#o}" if f.name == "mode" else f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"QueueStats({', '.join(shown)})"


@dataclass(frozen=True)
class Limits:
    """The kernel's queue limits (``msgctl(IPC_INFO)``); ``None`` where the platform does not report one.

    ``msgmax`` is the largest message (sysctl kernel.msgmax), ``msgmnb`` the
    default and, without CAP_SYS_RESOURCE, the largest ``max_size`` of a queue
    (kernel.msgmnb), ``msgmni`` the most queues (kernel.msgmni). The others are
    historical and reported as the kernel gives them.
    """

    msgmax: int
    msgmnb: int
    msgmni: int
    msgpool: Optional[int] = None
    msgmap: Optional[int] = None
    msgtql: Optional[int] = None
    msgssz: Optional[int] = None
    msgseg: Optional[int] = None


@dataclass(frozen=True)
class Usage:
    """System-wide use of queues (``msgctl(MSG_INFO)``)."""

    queues: int
    messages: int
    bytes: int


def stats_from_msqid_ds(msqid: int, ds: Any, key: int, size: int) -> QueueStats:
    """Build a QueueStats from a filled ``struct msqid_ds``.

    Args:
        msqid: the queue's id.
        ds: the ``struct msqid_ds *`` cdata that msgctl filled.
        key: the key, unsigned (as wide as key_t: 64 bits on the 64-bit BSDs), read by
            the platform's helper (its field name differs).
        size: the bytes queued, read by the platform's helper (likewise).
    """
    perm = ds.msg_perm
    return QueueStats(
        id=msqid,
        key=key,
        count=int(ds.msg_qnum),
        size=size,
        max_size=int(ds.msg_qbytes),
        last_send_time=int(ds.msg_stime),
        last_receive_time=int(ds.msg_rtime),
        last_change_time=int(ds.msg_ctime),
        last_send_pid=int(ds.msg_lspid),
        last_receive_pid=int(ds.msg_lrpid),
        uid=int(perm.uid),
        gid=int(perm.gid),
        cuid=int(perm.cuid),
        cgid=int(perm.cgid),
        mode=int(perm.mode) & 0o777,
    )


def limits_from_msginfo(info: Any) -> Limits:
    """Build Limits from a ``struct sysvmq_msginfo`` that ``msgctl(IPC_INFO)`` filled."""
    return Limits(
        msgmax=info.msgmax,
        msgmnb=info.msgmnb,
        msgmni=info.msgmni,
        msgpool=info.msgpool,
        msgmap=info.msgmap,
        msgtql=info.msgtql,
        msgssz=info.msgssz,
        msgseg=info.msgseg,
    )


def usage_from_msginfo(info: Any) -> Usage:
    """Build Usage from a ``struct sysvmq_msginfo`` that ``msgctl(MSG_INFO)`` filled.

    MSG_INFO reuses msginfo's fields: msgpool counts queues, msgmap messages,
    msgtql bytes (see msgctl(2)).
    """
    return Usage(queues=info.msgpool, messages=info.msgmap, bytes=info.msgtql)
