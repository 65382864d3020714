"""``sysvmq metrics``: the kernel's queue table in the Prometheus text format, from one pass over it.

A scrape is ``queues()`` (one MSG_STAT_ANY call per slot of the kernel's
table, so a queue the caller may not read is still listed), ``usage()`` and
``limits()``; nothing here opens or reads a queue, and so nothing changes
its times. The families are built once (``families``) and written either by
``render`` (``sysvmq metrics``, no dependency) or by prometheus_client
(``sysvmq exporter``, see _exporter), so both say the same.
"""

import argparse
import contextlib
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, TextIO, Tuple

from . import Limits, QueueStats, Usage, limits, queues, usage

__all__ = [
    "Family",
    "Snapshot",
    "snapshot",
    "families",
    "render",
    "write_atomically",
    "write_output",
    "owner_name",
    "cmd_metrics",
    "metrics_arguments",
]

# The labels of every per-queue series, in this order.
QUEUE_LABELS = ("key", "id", "owner")


class Snapshot(NamedTuple):
    """What one scrape read: every queue, the system-wide use and the limits."""

    queues: List[QueueStats]
    usage: Usage
    limits: Limits


@dataclass(frozen=True)
class Family:
    """One metric family: a gauge, its help text, and its samples as (label values, value)."""

    name: str
    help: str
    labels: Tuple[str, ...]
    samples: List[Tuple[Tuple[str, ...], float]]


def snapshot() -> Snapshot:
    """One pass over the kernel's queue table, and its totals and limits.

    Raises:
        UnsupportedOperation: not Linux (MSG_STAT, MSG_INFO and IPC_INFO are Linux-only).
    """
    return Snapshot(queues(), usage(), limits())


def owner_name(uid: int, cache: Dict[int, str]) -> str:
    """The user name of ``uid`` (its number where it has none), looked up once per cache."""
    name = cache.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        cache[uid] = name
    return name


# (name, help, the QueueStats field): the per-queue gauges.
_PER_QUEUE = (
    ("sysvmq_queue_messages", "Messages in the queue (msg_qnum).", "count"),
    ("sysvmq_queue_bytes", "Bytes of message text in the queue (msg_cbytes).", "size"),
    ("sysvmq_queue_max_bytes", "Bytes the queue may hold (msg_qbytes).", "max_size"),
    (
        "sysvmq_queue_last_send_timestamp_seconds",
        "Time of the last msgsnd on the queue, in seconds since the epoch; 0 if none.",
        "last_send_time",
    ),
    (
        "sysvmq_queue_last_receive_timestamp_seconds",
        "Time of the last msgrcv on the queue, in seconds since the epoch; 0 if none.",
        "last_receive_time",
    ),
    (
        "sysvmq_queue_last_change_timestamp_seconds",
        "Time of the queue's creation or last IPC_SET, in seconds since the epoch.",
        "last_change_time",
    ),
)


def families(snap: Snapshot) -> List[Family]:
    """The metric families of a snapshot, in a fixed order; per-queue samples in the kernel's order."""
    names: Dict[int, str] = {}
    labels = [(f"{st.key:#010x}", str(st.id), owner_name(st.uid, names)) for st in snap.queues]
    out = [
        Family(name, help, QUEUE_LABELS, [(lv, getattr(st, field)) for lv, st in zip(labels, snap.queues)])
        for name, help, field in _PER_QUEUE
    ]
    system = (
        ("sysvmq_queues", "Queues on the system (msgctl MSG_INFO).", snap.usage.queues),
        ("sysvmq_messages", "Messages in all queues on the system (msgctl MSG_INFO).", snap.usage.messages),
        ("sysvmq_bytes", "Bytes of message text in all queues on the system (msgctl MSG_INFO).", snap.usage.bytes),
        ("sysvmq_limit_msgmax_bytes", "The longest message, in bytes (sysctl kernel.msgmax).", snap.limits.msgmax),
        (
            "sysvmq_limit_msgmnb_bytes",
            "The bytes a new queue may hold (sysctl kernel.msgmnb).",
            snap.limits.msgmnb,
        ),
        ("sysvmq_limit_msgmni", "The most queues the system allows (sysctl kernel.msgmni).", snap.limits.msgmni),
    )
    out += [Family(name, help, (), [((), value)]) for name, help, value in system]
    return out


def _escape(value: str) -> str:
    # The text format's label-value escapes: backslash, double quote, newline.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # Every value read from the kernel is a whole number: written as one, with no ".0".
    return str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))


def render(fams: Iterable[Family]) -> str:
    """The Prometheus text exposition format (version 0.0.4) of these families."""
    lines: List[str] = []
    # Each queue's label set recurs in every per-queue family: format it once.
    label_sets: Dict[Tuple[Tuple[str, ...], Tuple[str, ...]], str] = {}
    for fam in fams:
        lines.append(f"# HELP {fam.name} {fam.help}")
        lines.append(f"# TYPE {fam.name} gauge")
        for values, value in fam.samples:
            pairs = label_sets.get((fam.labels, values))
            if pairs is None:
                inner = ",".join(f'{label}="{_escape(v)}"' for label, v in zip(fam.labels, values))
                pairs = label_sets[(fam.labels, values)] = f"{{{inner}}}" if inner else ""
            lines.append(f"{fam.name}{pairs} {_number(value)}")
    return "\n".join(lines) + "\n"


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename it.

    A reader (node_exporter's textfile collector) sees the old file or the new
    one, whole, never a part. The temporary name does not end in ``.prom``,
    so the collector never reads it. The file gets the mode a new file would
    (0o666 less the umask), not mkstemp's 0o600: the collector runs as
    another user.

    Raises:
        OSError: the directory cannot be written, or the disk is full.
    """
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_output(path: str, text: str) -> None:
    """Write ``text`` to ``--output``'s ``path`` as an operator means it.

    A regular file (or none yet) is replaced atomically (``write_atomically``);
    through a symbolic link, the file it points to is, and the link stays a
    link. Anything else that exists (a device, as /dev/stdout's terminal, a
    FIFO, a pipe) is written straight to, as ``> path`` would: a rename would
    replace it with a regular file.

    Raises:
        OSError: the file or its directory cannot be written.
    """
    try:
        mode = os.stat(path).st_mode  # through links
    except FileNotFoundError:
        mode = None
    if mode is None or stat.S_ISREG(mode):
        write_atomically(os.path.realpath(path), text)
        return
    with open(path, "w") as f:
        f.write(text)


def cmd_metrics(args: argparse.Namespace, out: TextIO) -> None:
    text = render(families(snapshot()))
    if args.output is None:
        out.write(text)
        return
    try:
        write_output(args.output, text)
    except OSError as exc:
        # Name the file asked for, not the temporary one the error was about. A missing directory
        # is no missing queue (exit 3): only a refusal keeps its own status (exit 4).
        message = f"cannot write {args.output}: {exc.strerror}"
        if isinstance(exc, PermissionError):
            raise PermissionError(exc.errno, message) from None
        raise OutputFileError(message) from None


class OutputFileError(OSError):
    """``--output`` could not be written (the command line's exit 1)."""


def metrics_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--output",
        metavar="FILE",
        help="write FILE atomically (a temporary file, then rename), as node_exporter's textfile collector needs; "
        "through a symbolic link, the file it points to; a device or FIFO (/dev/stdout) is written straight to",
    )
