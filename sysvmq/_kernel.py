"""What the kernel says about itself: limits, usage, the queue table, ftok, and readings of a queue.

The readings that sends check a message against (kernel.msgmax, a queue's
max_size) are cached here, with how long each is trusted.
"""

import errno
import os
import weakref
from typing import Any, List, Optional, Tuple, Union

from ._args import PERMS, c_key, proj_id_arg
from ._errors import QueueNotFound, UnsupportedOperation, error_from_errno, msgget_error
from ._ffi import (
    HAS_IPC_INFO,
    HAS_MSG_INFO,
    HAS_MSG_STAT,
    HAS_MSG_STAT_ANY,
    IPC_CREAT,
    IPC_EXCL,
    IPC_INFO,
    IPC_PRIVATE,
    IPC_STAT,
    KEY_MASK,
    LONG_LONG_P,
    MSG_INFO,
    MSG_STAT,
    MSG_STAT_ANY,
    MSGINFO_P,
    MSQID_DS_P,
    ffi,
    lib,
)
from ._stats import Limits, QueueStats, Usage, limits_from_msginfo, stats_from_msqid_ds, usage_from_msginfo

__all__ = [
    "DEFAULT_MODE",
    "FALLBACK_MSGMAX",
    "READING_TTL",
    "limits",
    "usage",
    "queues",
    "ftok",
    "msgmax",
    "msgmnb",
    "msgget",
    "key_of",
    "ipc_stat",
    "stat_any",
    "Capacity",
    "capacity_of",
]

DEFAULT_MODE = 0o600
# Without IPC_INFO (macOS, the BSDs) the default buffer is the historical msgmax.
FALLBACK_MSGMAX = 8192
# How long a reading of msgmax (send_many) or of a queue's max_size (sends) is
# trusted. A send refused on a reading reads anew before it says so.
READING_TTL = 1.0

# A reading's clock is C's: send_many's first crossing tells in C whether the reading is stale.
_monotonic = lib.sysvmq_monotonic


def _msginfo(cmd: int, name: str, available: bool) -> Tuple[int, Any]:
    """msgctl(IPC_INFO or MSG_INFO): its result (the highest index in use) and the struct."""
    if not available:
        raise UnsupportedOperation(errno.ENOSYS, f"{name} is Linux-only")
    info = ffi.new(MSGINFO_P)
    rc = lib.sysvmq_msginfo(cmd, info)
    if rc < 0:
        raise error_from_errno(ffi.errno, f"msgctl({name})")
    return rc, info


def limits() -> Limits:
    """The kernel's limits on queues, from ``msgctl(IPC_INFO)`` (see msgctl(2)).

    Returns:
        ``Limits``: msgmax and msgmnb in bytes, msgmni in queues.

    Raises:
        UnsupportedOperation: the platform has no IPC_INFO (only Linux does).
    """
    return limits_from_msginfo(_msginfo(IPC_INFO, "IPC_INFO", HAS_IPC_INFO)[1])


def usage() -> Usage:
    """Queues, messages and bytes in use system-wide, from ``msgctl(MSG_INFO)`` (see msgctl(2)).

    Raises:
        UnsupportedOperation: the platform has no MSG_INFO (only Linux does).
    """
    return usage_from_msginfo(_msginfo(MSG_INFO, "MSG_INFO", HAS_MSG_INFO)[1])


def _stats_of(msqid: int, ds: Any) -> QueueStats:
    return stats_from_msqid_ds(msqid, ds, lib.sysvmq_key(ds) & KEY_MASK, lib.sysvmq_cbytes(ds))


def queues() -> List[QueueStats]:
    """Every queue the caller may see, in the order ``ipcs -q`` lists them (msgctl(2), MSG_STAT).

    Uses MSG_STAT_ANY (Linux 4.17+), which lists queues the caller cannot
    read, and falls back to MSG_STAT, which lists only readable ones. One
    pass over the kernel's table of queues.

    Raises:
        UnsupportedOperation: the platform has no MSG_STAT (only Linux does).
    """
    max_index, info = _msginfo(MSG_INFO, "MSG_INFO", HAS_MSG_STAT)
    in_use = info.msgpool
    ds = ffi.new(MSQID_DS_P)
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
        The key, unsigned, like ``SysVMQ.key`` (0..2**32-1 where key_t is 32
        bits, as on Linux and macOS; 64 bits on the 64-bit BSDs).

    Raises:
        ValueError: the path holds a NUL byte (as ``os.stat`` says).
        OSError: the path cannot be stat()ed (FileNotFoundError if missing).
    """
    p = proj_id_arg(proj_id)
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike file name, not {type(path).__name__}")
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("ftok: embedded null byte in path")
    key = ffi.new(LONG_LONG_P)
    if lib.sysvmq_ftok(raw, p, key) < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), os.fsdecode(raw))
    return int(key[0]) & KEY_MASK


def msgmax() -> int:
    """kernel.msgmax, read anew (the historical 8192 where IPC_INFO does not exist)."""
    return limits().msgmax if HAS_IPC_INFO else FALLBACK_MSGMAX


def msgmnb() -> Optional[int]:
    """kernel.msgmnb, or None where IPC_INFO does not exist."""
    return limits().msgmnb if HAS_IPC_INFO else None


def msgmni() -> Optional[int]:
    return limits().msgmni if HAS_IPC_INFO else None


def msgget(ukey: int, flags: int) -> int:
    """msgget(2): the id of the queue with this key (unsigned), creating it as flags say."""
    if (flags & IPC_CREAT or ukey == IPC_PRIVATE) and not flags & PERMS:
        flags |= DEFAULT_MODE  # mode 0 would lock a non-root owner out of its own queue
    msqid: int = lib.msgget(c_key(ukey), flags)
    if msqid >= 0:
        return msqid
    err = ffi.errno
    if err == errno.EACCES and not flags & IPC_EXCL:
        # msgget checks the requested permission bits against the queue's;
        # asking for none only tests existence. Access is checked at use.
        msqid = lib.msgget(c_key(ukey), 0)
        if msqid >= 0:
            return msqid
        err = ffi.errno
    raise msgget_error(err, ukey, msgmni() if err == errno.ENOSPC else None)


def ipc_stat(msqid: int) -> Tuple[int, Any]:
    """msgctl(IPC_STAT): (0, the filled struct msqid_ds), or (errno, None)."""
    ds = ffi.new(MSQID_DS_P)
    if lib.msgctl(msqid, IPC_STAT, ds) < 0:
        return ffi.errno, None
    return 0, ds


def stat_any(msqid: int) -> Optional[QueueStats]:
    """The queue's stats without read permission (MSG_STAT_ANY, Linux 4.17+), or None.

    MSG_STAT_ANY takes an index into the kernel's table; the kernel keeps only
    the index bits of an id, so the id itself names the slot. The slot may
    hold another queue since, so the id it returns must match.
    """
    if not HAS_MSG_STAT_ANY:
        return None
    ds = ffi.new(MSQID_DS_P)
    if lib.msgctl(msqid, MSG_STAT_ANY, ds) != msqid:
        return None
    return _stats_of(msqid, ds)


def stats(msqid: int) -> Tuple[int, Optional[QueueStats]]:
    """(0, the stats) by IPC_STAT, or (errno, None)."""
    err, ds = ipc_stat(msqid)
    return (0, _stats_of(msqid, ds)) if ds is not None else (err, None)


def key_of(msqid: int) -> int:
    """The key of the queue with this id; QueueNotFound if there is none."""
    err, ds = ipc_stat(msqid)
    if ds is not None:
        return lib.sysvmq_key(ds) & KEY_MASK  # type: ignore[no-any-return]
    if err in (errno.EINVAL, errno.EIDRM):
        raise QueueNotFound(errno.ENOENT, f"attach: no queue has id {msqid}")
    if err not in (errno.EACCES, errno.EPERM):
        raise error_from_errno(err, f"msgctl(IPC_STAT) on queue {msqid}")
    # The queue exists but is not ours to read: MSG_STAT_ANY still tells.
    st = stat_any(msqid)
    if st is not None:
        return st.key
    if HAS_MSG_STAT:
        for st in queues():
            if st.id == msqid:
                return st.key
    return IPC_PRIVATE  # the kernel will not say; 0 stands for "unknown"


class Capacity:
    """The longest message a queue could ever accept, as last read, and until when that reading is trusted.

    That is the smaller of kernel.msgmax and the queue's max_size (msg_qbytes):
    Linux lets msgsnd(2) wait for ever for room a message can never have, so
    sends check against this before they wait, and send_many before it sends
    anything. A producer that may not read the queue (mode 0o620) still learns
    max_size through MSG_STAT_ANY; only where neither read works is max_size
    taken to be no limit.

    Attributes:
        longest: bytes; a message longer than this never fits (by this reading).
        until: the monotonic time after which the reading is stale.
        msgmax, max_size: the two readings (max_size None where the kernel would not tell).
    """

    __slots__ = ("msqid", "longest", "until", "msgmax", "max_size", "__weakref__")

    def __init__(self, msqid: int) -> None:
        self.msqid = msqid
        self.longest = self.msgmax = 0
        self.max_size: Optional[int] = None
        self.until = -1.0

    def refresh(self) -> "Capacity":
        """Read both anew."""
        err, st = stats(self.msqid)
        if st is None and err in (errno.EACCES, errno.EPERM):
            st = stat_any(self.msqid)
        return self.set(None if st is None else st.max_size)

    def set(self, max_size: Optional[int]) -> "Capacity":
        """Take ``max_size`` as the queue's (from IPC_SET, or a reading) and read msgmax anew."""
        self.msgmax = msgmax()
        self.max_size = max_size
        self.longest = self.msgmax if max_size is None else min(self.msgmax, max_size)
        self.until = _monotonic() + READING_TTL
        return self

    def current(self) -> "Capacity":
        """This reading if still trusted, else a new one."""
        return self if _monotonic() <= self.until else self.refresh()


# One reading per queue for every handle on it in this process: update() on one handle binds them all at once.
_capacities: "weakref.WeakValueDictionary[int, Capacity]" = weakref.WeakValueDictionary()


def capacity_of(msqid: int) -> Capacity:
    """The reading that every handle on this queue in this process shares (made on first use)."""
    cap = _capacities.get(msqid)
    if cap is None:
        cap = _capacities.setdefault(msqid, Capacity(msqid))
    return cap
