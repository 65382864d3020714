"""``sysvmq top``: how full each queue is and how fast it fills, refreshed every interval.

On a terminal the view redraws in place on the alternate screen, with the
cursor hidden and keys read unbuffered (q quits); the terminal is given back
as it was on q, Ctrl-C, SIGTERM or SIGHUP, and the command exits 0. Elsewhere
(a pipe, a file) each refresh is printed whole: a table and a blank line, or
with --json one JSON object a line. Each refresh is one ``queues()`` pass, so
queues created or removed between refreshes appear or disappear.
"""

import argparse
import json
import os
import select
import shutil
import signal
import sys
import termios
import time
import tty
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from . import QueueStats, SysVMQ, ftok, queues, usage
from ._metrics import owner_name

__all__ = ["Row", "fullness", "Top", "table", "snapshot_json", "cmd_top", "top_arguments"]

HEADER = ("KEY", "ID", "OWNER", "MESSAGES", "BYTES", "MAX_BYTES", "FULL%", "MSG/S", "LAST_SEND", "LAST_RECV")

# Alternate screen and hidden cursor on the way in; both undone on the way out.
ENTER = "\x1b[?1049h\x1b[?25l"
LEAVE = "\x1b[?25h\x1b[?1049l"
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


@dataclass(frozen=True)
class Row:
    """One queue at one refresh; ``None`` where there is nothing to tell yet (never sent, first sight)."""

    key: str
    id: int
    owner: str
    messages: int
    bytes: int
    max_bytes: int
    full_percent: float
    messages_per_second: Optional[float]
    seconds_since_send: Optional[int]
    seconds_since_receive: Optional[int]


def fullness(st: QueueStats) -> float:
    """How full the queue is, in percent of ``max_size``.

    msgsnd(2) blocks when the queue's text would pass msg_qbytes, and also when
    its message count would: Linux counts each message as at least one byte
    (ipc/msg.c, msg_fits_inqueue), so a queue of empty messages fills too.
    """
    if st.max_size <= 0:
        return 100.0
    return min(100.0, 100.0 * max(st.size, st.count) / st.max_size)


def _ago(now: float, then: int) -> Optional[int]:
    return max(0, int(now) - then) if then else None


class Top:
    """Turns successive ``queues()`` passes into rows, with each queue's change in messages a second."""

    def __init__(self, named: Sequence[SysVMQ] = (), keys: Sequence[int] = ()) -> None:
        # A queue named by key is followed by key (it may be removed and made
        # again, or not be made yet: ``keys``); one named by id, or a private one, by id.
        self._keys = {q.key for q in named if q.key} | set(keys)
        self._ids = {q.id for q in named if not q.key}
        self._everything = not named and not keys
        self._seen: Dict[int, Tuple[int, float]] = {}  # id -> (messages, monotonic time)
        self._owners: Dict[int, str] = {}
        self.absent: List[int] = []  # the keys named that no queue had at the last refresh

    def _shown(self, st: QueueStats) -> bool:
        return self._everything or st.id in self._ids or (st.key != 0 and st.key in self._keys)

    def refresh(self, found: List[QueueStats], wall: float, mono: float) -> List[Row]:
        """The rows for one pass, fullest first (then by id)."""
        rows = []
        seen: Dict[int, Tuple[int, float]] = {}
        for st in found:
            if not self._shown(st):
                continue
            before = self._seen.get(st.id)
            rate = (st.count - before[0]) / (mono - before[1]) if before and mono > before[1] else None
            seen[st.id] = (st.count, mono)
            rows.append(
                Row(
                    key=f"{st.key:#010x}",
                    id=st.id,
                    owner=owner_name(st.uid, self._owners),
                    messages=st.count,
                    bytes=st.size,
                    max_bytes=st.max_size,
                    full_percent=round(fullness(st), 1),
                    messages_per_second=None if rate is None else round(rate, 1),
                    seconds_since_send=_ago(wall, st.last_send_time),
                    seconds_since_receive=_ago(wall, st.last_receive_time),
                )
            )
        self._seen = seen  # a removed queue is forgotten
        self.absent = sorted(self._keys - {st.key for st in found})
        rows.sort(key=lambda r: (-r.full_percent, r.id))
        return rows


def _seconds(value: Optional[int]) -> str:
    return "never" if value is None else f"{value}s"


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:+.1f}" if value else "0"


def table(rows: List[Row]) -> List[str]:
    """The rows as aligned text lines under HEADER; every cell is one word, so ``split()`` reads a line back."""
    return _aligned(HEADER, _cells(rows), range(len(HEADER)))


# On a terminal too narrow for HEADER (an 80-column one, with 8-digit ids): shorter names first,
# then columns left out, the least telling first; KEY, ID and FULL% always stay.
SHORT_HEADER = ("KEY", "ID", "OWNER", "MSGS", "BYTES", "MAX", "FULL%", "MSG/S", "SENT", "RECVD")
DROP_ORDER = (2, 5, 4, 8, 7, 9, 3)  # OWNER, MAX_BYTES, BYTES, LAST_SEND, MSG/S, LAST_RECV, MESSAGES


def fitted(rows: List[Row], width: int) -> Tuple[List[str], List[str]]:
    """The table in ``width`` columns if it can be: (its lines, the names of the columns left out)."""
    cells = _cells(rows)
    keep = list(range(len(HEADER)))
    lines = table(rows)
    if max(map(len, lines)) <= width:
        return lines, []
    dropped: List[str] = []
    for column in (None, *DROP_ORDER):
        if column is not None:
            keep.remove(column)
            dropped.append(SHORT_HEADER[column])
        lines = _aligned(SHORT_HEADER, cells, keep)
        if max(map(len, lines)) <= width:
            break
    return lines, dropped


def _cells(rows: List[Row]) -> List[List[str]]:
    return [
        [
            r.key,
            str(r.id),
            r.owner,
            str(r.messages),
            str(r.bytes),
            str(r.max_bytes),
            f"{r.full_percent:.1f}",
            _rate(r.messages_per_second),
            _seconds(r.seconds_since_send),
            _seconds(r.seconds_since_receive),
        ]
        for r in rows
    ]


def _aligned(header: Sequence[str], cells: List[List[str]], keep: Sequence[int]) -> List[str]:
    """The columns ``keep`` of the header and cells, aligned: key and owner from the left, numbers right."""
    table = [[row[i] for i in keep] for row in [list(header), *cells]]
    widths = [max(len(row[j]) for row in table) for j in range(len(keep))]
    left = {j for j, i in enumerate(keep) if i in (0, 2)}
    return [
        "  ".join(c.ljust(w) if j in left else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in table
    ]


def snapshot_json(rows: List[Row], wall: float, absent: Sequence[int] = ()) -> str:
    """One refresh as one JSON line: ``time`` (seconds since the epoch), ``queues`` (the rows' fields)
    and ``absent`` (the keys named that no queue has, as hex strings)."""
    return json.dumps(
        {"time": round(wall, 3), "queues": [asdict(r) for r in rows], "absent": [f"{k:#010x}" for k in absent]}
    )


def _absent(keys: Sequence[int]) -> List[str]:
    if not keys:
        return []
    return ["", "absent (shown once made): " + " ".join(f"{k:#010x}" for k in keys)]


class _Stop(Exception):
    pass


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise _Stop


def _refresh(top: Top) -> Tuple[List[Row], float]:
    found = queues()
    wall, mono = time.time(), time.monotonic()
    return top.refresh(found, wall, mono), wall


def _screen(
    rows: List[Row], wall: float, interval: float, size: os.terminal_size, keys: bool, absent: Sequence[int] = ()
) -> str:
    use = usage()
    # Two short lines, not one long one: an 80-column terminal shows them whole, the quit hint too.
    title = f"sysvmq top  {time.strftime('%H:%M:%S', time.localtime(wall))}  every {interval:g} s  " + (
        "(q or Ctrl-C quits)" if keys else "(Ctrl-C quits)"
    )
    rows_shown, dropped = fitted(rows, size.columns)
    totals = f"{len(rows)} shown; system: {use.queues} queues, {use.messages} messages, {use.bytes} bytes"
    note = f"hidden, too narrow: {', '.join(dropped)}" if dropped else ""  # its own line, not cut off a longer one
    lines = [title, totals, note, *rows_shown, *_absent(absent)]
    if len(lines) > size.lines:
        hidden = len(lines) - size.lines + 1
        lines = [*lines[: size.lines - 1], f"... and {hidden} more"]
    body = (CLEAR_LINE + "\n").join(line[: size.columns] for line in lines)
    return HOME + body + CLEAR_LINE + CLEAR_BELOW


def _wait_for_quit(fd: Optional[int], deadline: float) -> bool:
    """Wait until the deadline; True as soon as q is typed (when there is a terminal to read)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if fd is None:
            time.sleep(left)
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            typed = os.read(fd, 64)
            if not typed or b"q" in typed.lower():
                return True


def _on_terminal(top: Top, interval: float, count: Optional[int], out: TextIO) -> None:
    fd: Optional[int] = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    handlers = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    out.write(ENTER)
    try:
        if fd is not None:
            tty.setcbreak(fd)  # keys arrive one by one and unechoed; Ctrl-C still signals
        shown = 0
        deadline = time.monotonic()
        while True:
            rows, wall = _refresh(top)
            out.write(_screen(rows, wall, interval, shutil.get_terminal_size(), fd is not None, top.absent))
            out.flush()
            shown += 1
            if count is not None and shown >= count:
                return
            deadline = max(deadline + interval, time.monotonic())
            if _wait_for_quit(fd, deadline):
                return
    except (KeyboardInterrupt, _Stop):
        pass  # the usual way to leave top: not an error
    finally:
        if saved is not None and fd is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        out.write(LEAVE)
        out.flush()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _as_lines(top: Top, interval: float, count: Optional[int], as_json: bool, out: TextIO) -> None:
    shown = 0
    deadline = time.monotonic()
    try:
        while True:
            rows, wall = _refresh(top)
            out.write(snapshot_json(rows, wall, top.absent) + "\n" if as_json else "\n".join(table(rows)) + "\n\n")
            out.flush()
            shown += 1
            if count is not None and shown >= count:
                return
            deadline = max(deadline + interval, time.monotonic())
            time.sleep(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass


def cmd_top(args: argparse.Namespace, out: TextIO) -> None:
    # QUEUE's grammar (key, id:N, path) is the command line's; imported here
    # because _cli imports this module.
    from ._cli import EXIT_NOT_FOUND, CommandError, resolve

    named: List[SysVMQ] = []
    keys: List[int] = []
    for name in args.queues:
        try:
            named.append(resolve(name, args.proj))
        except CommandError as exc:
            # A key (or an existing file's) may name a queue not made yet: wait for it, shown absent.
            # An id names one queue only, never made again; a missing file names no key.
            if exc.status != EXIT_NOT_FOUND or name.msqid is not None or not _key_of(name, args.proj):
                raise
            keys.append(_key_of(name, args.proj))
    top = Top(named, keys)
    if out.isatty() and not args.json:
        _on_terminal(top, args.interval, args.count, out)
    else:
        _as_lines(top, args.interval, args.count, args.json, out)


def _key_of(name: Any, proj: int) -> int:
    """The key a QUEUE names (a key, or a path's ftok key), 0 if none (an id, or a path that is no file)."""
    if name.key is not None:
        return int(name.key)
    if name.path is not None:
        try:
            return ftok(name.path, proj)
        except OSError:
            return 0
    return 0


MIN_INTERVAL = 0.05


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= MIN_INTERVAL:  # NaN too
        raise argparse.ArgumentTypeError(f"{text} is out of range: at least {MIN_INTERVAL} seconds")
    return value


def top_arguments(c: argparse.ArgumentParser) -> None:
    # The command line's grammar of QUEUE, --proj and counts; _cli imports this module.
    from ._cli import _LONG_MAX, _proj, _queue, _whole

    c.add_argument(
        "queues", nargs="*", type=_queue, metavar="QUEUE", help="show only these (a key, id:N, or a path); default all"
    )
    c.add_argument(
        "--proj",
        type=_proj,
        default=1,
        metavar="N",
        help="ftok project id for a path QUEUE: 1 to 255, or one character as in C's ftok(path, 'A') (default 1)",
    )
    c.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="S",
        help=f"seconds between refreshes, at least {MIN_INTERVAL} (default 1)",
    )
    c.add_argument(
        "--count",
        type=_whole("a count", 1, _LONG_MAX),
        metavar="N",
        help="stop after N refreshes (default: until q or Ctrl-C)",
    )
    c.add_argument("--json", action="store_true", help="one JSON object a refresh, a line each, even on a terminal")
