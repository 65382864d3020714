"""The ``sysvmq`` command for operators: list, inspect, send, receive, create, update, remove, key, limits, bench, demo.

Built on the public API only. Errors print one line naming the queue and the
cause, and exit with a status per class (see EPILOG); every malformed argument
is a usage error (2) naming the argument, found before anything is changed.
Output is written as bytes straight to the file descriptor: ``recv`` never
drops a message it took (it checks the output before each take, and queues a
message again if writing it fails).
"""

import argparse
import array
import base64
import contextlib
import errno
import fcntl
import grp
import io
import json
import os
import pwd
import re
import select
import shlex
import signal
import stat
import struct
import sys
import termios
import textwrap
import time
from typing import Any, Callable, Dict, List, NamedTuple, NoReturn, Optional, Sequence, TextIO, Tuple, cast

from . import (
    Message,
    QueueStats,
    SysVMQ,
    __version__,
    _bench,
    _demo,
    _exporter,
    _metrics,
    _plot,
    _top,
    ftok,
    limits,
    queues,
    usage,
)
from ._errors import (
    MessageTooLarge,
    QueueEmpty,
    QueueExists,
    QueueFull,
    QueueNotFound,
    QueuePermissionError,
    QueueRemoved,
    SysVMQError,
)
from ._procs import Signals, Stopped, WorkerFailed

EXIT_OTHER, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PERMISSION, EXIT_EMPTY_OR_FULL = 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_READER_GONE = 128 + signal.SIGPIPE  # 141, as a process killed by SIGPIPE

EPILOG = """\
QUEUE is a key (0xDEADC0DE, or decimal), id:N for a queue id as `sysvmq ls`
and `ipcs -q` show it, or the path of an existing file (keyed with ftok(3);
--proj picks the project id). A QUEUE that starts with a digit (or a sign, or
a space before one) is a key, in decimal digits or 0x hex and nothing else: write
./NAME for a file of that name. In id:N, N is decimal.

exit status: 0 success, 1 other errors, 2 usage (a malformed argument; nothing
was done), 3 queue not found (or removed), 4 permission denied, 5 empty, full
or timed out (with --nowait or --timeout), 130 interrupted (Ctrl-C), 129 and
143 ended by SIGHUP and SIGTERM, 141 the reader of standard output went away.
Interrupted or ended, a command leaves queues as they were, and bench and demo
remove theirs.
"""

SYSCTLS = {"msgmax": "kernel.msgmax", "msgmnb": "kernel.msgmnb", "msgmni": "kernel.msgmni"}

_LONG_MAX = 2 ** (8 * struct.calcsize("l") - 1) - 1  # a message type is a C long
_INT_MAX = 2**31 - 1  # a queue id is an int
_KEY_MAX = 2**32 - 1  # key_t is 32 bits, written unsigned as ipcs shows it
_ID_MAX = 2**32 - 2  # uid_t and gid_t; (uid_t)-1 means "no change" to the kernel
# Linux's msgctl(IPC_SET) passes msg_qbytes on as an int (ipc/msg.c, msgctl_down):
# it keeps only the low 32 bits, so 4294967296 would set 0 and 4294967301 set 5,
# and 2**31 and above are negative to it. Nothing above INT_MAX is kept as given.
MAX_SIZE_LIMIT = _INT_MAX
REQUEUE_WAIT = 5.0  # seconds recv waits for room to queue a message again
READER_GRACE = 1.0  # seconds a stopped recv waits for its reader to read, or to go, before it leaves
PEEK_POLL_MAX = 0.1  # seconds between scans while --peek waits for a match


class CommandError(Exception):
    """A failure to report in one line with an exit status."""

    def __init__(self, message: str, status: int = EXIT_OTHER) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CommandError):
    """A malformed argument found after parsing (it needed a kernel limit): exit 2, nothing done."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class OutputError(CommandError):
    """Standard output cannot take what the command prints."""

    def __init__(self, reason: str, err: Optional[int]) -> None:
        super().__init__(reason, EXIT_READER_GONE if err == errno.EPIPE else EXIT_OTHER)
        self.reason = reason
        self.err = err


# -- standard output, as bytes ---------------------------------------------------


class Output:
    """Standard output, written as bytes straight to its file descriptor.

    Nothing is encoded (PYTHONIOENCODING cannot make a write fail) and nothing
    waits in a buffer: once ``write`` returns, the bytes have left the process.
    ``check`` says, before a command takes something it would have to print,
    whether the output can still take it.
    """

    def __init__(self, stream: Any) -> None:
        self.fd: Optional[int] = None
        self.pipe = False
        if stream is not None:  # None when the command started with its standard output closed
            try:
                stream.flush()
                self.fd = stream.fileno()
                self.pipe = stat.S_ISFIFO(os.fstat(self.fd).st_mode)
            except (OSError, ValueError, AttributeError):
                self.fd = None

    def _reader_gone(self) -> bool:
        assert self.fd is not None
        poller = select.poll()
        poller.register(self.fd, 0)  # POLLERR, POLLHUP and POLLNVAL are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))

    def wait_read(self, timeout: Optional[float] = None) -> bool:
        """On a pipe, wait until the reader has read all that was written, for ``timeout`` seconds
        at most (None: for as long as it takes); False if that time passed first.

        Raises OutputError if the reader went away with bytes unread. A pipe
        holds 64 KiB that a writer cannot take back: without this wait, ``recv
        --count 3 | head -1`` would take messages that no one reads.
        """
        if not self.pipe or self.fd is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        unread = array.array("i", [0])
        pause = 20e-6
        while True:
            fcntl.ioctl(self.fd, termios.FIONREAD, unread)
            if unread[0] == 0:
                return True
            if self._reader_gone():
                # It may have read the rest just before it went; gone, it reads no more: look again.
                fcntl.ioctl(self.fd, termios.FIONREAD, unread)
                if unread[0] == 0:
                    return True
                raise OutputError("standard output's reader went away before reading it", errno.EPIPE)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def check(self) -> None:
        """Raise OutputError if the output is closed, its reader has gone, or it refuses writes."""
        if self.fd is None:
            raise OutputError("standard output is closed", errno.EBADF)
        try:
            if self._reader_gone():
                raise OutputError("standard output's reader has gone", errno.EPIPE)
            os.write(self.fd, b"")  # /dev/full and its kind refuse even this; a closed descriptor, EBADF
        except OSError as exc:
            raise self._error(exc) from None

    def write(self, data: bytes) -> None:
        if self.fd is None:
            raise OutputError("standard output is closed", errno.EBADF)
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(self.fd, view) :]
                except BlockingIOError:  # an O_NONBLOCK descriptor shared with another process
                    select.select([], [self.fd], [])
        except OSError as exc:
            raise self._error(exc) from None

    def text(self, text: str) -> None:
        self.write(text.encode("utf-8", "backslashreplace"))

    def as_text(self) -> TextIO:
        """A text stream over this output, for the commands that redraw a terminal (top) or write text."""
        return cast(TextIO, _TextOutput(self))

    @staticmethod
    def _error(exc: OSError) -> OutputError:
        if exc.errno == errno.EPIPE:
            return OutputError("standard output's reader has gone", exc.errno)
        return OutputError(f"cannot write to standard output ({exc.strerror})", exc.errno)


class _TextOutput(io.TextIOBase):
    """Output as a text stream: str written as UTF-8 (escapes where it cannot be), unbuffered."""

    def __init__(self, out: Output) -> None:
        super().__init__()
        self._out = out

    def write(self, text: str) -> int:
        self._out.text(text)
        return len(text)

    def isatty(self) -> bool:
        return self._out.fd is not None and os.isatty(self._out.fd)

    def fileno(self) -> int:
        if self._out.fd is None:
            raise OSError(errno.EBADF, "standard output is closed")
        return self._out.fd


def _stderr(line: str) -> None:
    """One line on standard error, as bytes: an error report must not fail for want of an encoding."""
    data = (line.rstrip("\n") + "\n").encode("utf-8", "backslashreplace")
    with contextlib.suppress(OSError):
        os.write(2, data)


# -- parsing arguments -------------------------------------------------------------

_NUMERIC = re.compile(r"[+-]?[0-9]")
_LEADING_ZERO = re.compile(r"[+-]?0[0-9_]+")


def _number(text: str, what: str) -> int:
    """A whole number as an operator writes it: decimal, 0x hex, 0o octal, 0b binary."""
    try:
        return int(text, 0)
    except ValueError:
        if _LEADING_ZERO.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"{text!r} has a leading 0, which is ambiguous: write {int(text, 10)} for decimal "
                f"or 0o{text.lstrip('+-0') or '0'} for octal"
            ) from None
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _whole(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``; the message names both."""

    def parse(text: str) -> int:
        value = _number(text, what)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {what} is {low} to {high}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds >= 0")
    return value


def _mode(text: str) -> int:
    body = text[2:] if text[:2] in ("0o", "0O") else text
    try:
        value = int(body, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode, as 660 or 0o660") from None
    if not 0 <= value <= 0o777 or body.startswith(("-", "+")):
        raise argparse.ArgumentTypeError(f"{text} is out of range: permission bits are 0 to 777 (octal)")
    return value


def _proj(text: str) -> int:
    """An ftok project id: 1 to 255, or one character as C writes ftok(path, 'A')."""
    if len(text) == 1 and not text.isdigit():
        value = ord(text)
        if 1 <= value <= 255:
            return value
    return _whole("a project id", 1, 255)(text)


def _owner_id(lookup: Callable[[str], Any], kind: str) -> Callable[[str], int]:
    """An argparse type: a user or group, by name (looked up with ``lookup``) or by number."""

    def parse(text: str) -> int:
        if not _NUMERIC.match(text):
            try:
                return int(lookup(text)[2])
            except KeyError:
                raise argparse.ArgumentTypeError(f"no {kind} is named {text!r}") from None
        return _whole(f"a {kind} id", 0, _ID_MAX)(text)

    return parse


_OPEN_ZERO = "key 0 is IPC_PRIVATE, which names no queue: name a private queue by its id, id:N (sysvmq ls shows it)"
_CREATE_ZERO = (
    "key 0 is IPC_PRIVATE, which makes a new queue no key reaches, every time: "
    "sysvmq create --private makes one on purpose (and prints its id)"
)


# A key or a queue id as ipcs shows them: decimal digits, or (a key) 0x and hex digits. Nothing
# else of Python's int() grammar: no sign (-1 would be key 0xffffffff), no _, no spaces, no 0o/0b.
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
# What an operator meant as a number (a key, or id:N's N), right or wrong; anything else is a path.
_LOOKS_NUMERIC = re.compile(r"\s*[+-]?[0-9]")


def _digits(text: str, what: str, hex_too: bool) -> int:
    """A whole number written as ipcs writes it: decimal digits (no leading 0), or 0x hex if ``hex_too``."""
    if _DECIMAL.fullmatch(text):
        if len(text) > 1 and text.startswith("0"):
            hint = f" or 0x{int(text, 8):x} if it was octal" if re.fullmatch(r"[0-7]+", text) else ""
            raise argparse.ArgumentTypeError(
                f"{text!r} has a leading 0, which is ambiguous: write {int(text, 10)} for decimal{hint}"
            )
        return int(text, 10)
    if hex_too and _HEX.fullmatch(text):
        return int(text, 16)
    forms = "decimal digits or 0x and hex digits" if hex_too else "decimal digits"
    raise argparse.ArgumentTypeError(f"{text!r} is not {what}: write {forms}, with no sign, _ or spaces")


def _key(text: str, zero: str = _OPEN_ZERO) -> int:
    """A key as ``ipcs`` shows it, 0x hex or decimal, unsigned 32 bits; ``zero`` says why not 0."""
    value = _digits(text, "a key", hex_too=True)
    if value > _KEY_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range: a key is 32 bits, 0 to 0xffffffff")
    if value == 0:
        raise argparse.ArgumentTypeError(zero)
    return value


class QueueName(NamedTuple):
    """QUEUE as given: exactly one of key, msqid and path is set."""

    text: str
    key: Optional[int] = None
    msqid: Optional[int] = None
    path: Optional[str] = None


def _queue(text: str) -> QueueName:
    if text.startswith("id:"):
        msqid = _digits(text[3:], "a queue id", hex_too=False)
        if msqid > _INT_MAX:
            raise argparse.ArgumentTypeError(f"{text[3:]} is out of range: a queue id is 0 to {_INT_MAX}")
        return QueueName(text, msqid=msqid)
    if _LOOKS_NUMERIC.match(text):
        try:
            return QueueName(text, key=_key(text))
        except argparse.ArgumentTypeError as exc:
            if str(exc) == _OPEN_ZERO:
                raise
            raise argparse.ArgumentTypeError(f"{exc} (for a file of that name, write ./{text})") from None
    if not text:
        raise argparse.ArgumentTypeError("an empty QUEUE: give a key, id:N or a path")
    return QueueName(text, path=text)


def _create_key(text: str) -> int:
    return _key(text, _CREATE_ZERO)


class _Parser(argparse.ArgumentParser):
    """argparse, with errors in one line, and positionals and options in any order (intermixed)."""

    _intermixed = False
    _inside = False

    def parse_known_args(  # type: ignore[override]
        self, args: Optional[Sequence[str]] = None, namespace: Optional[argparse.Namespace] = None
    ) -> Tuple[argparse.Namespace, List[str]]:
        # parse_known_intermixed_args calls parse_known_args itself (before 3.12): only the outer call switches.
        if not self._intermixed or self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            ns, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    def error(self, message: str) -> NoReturn:
        _stderr(f"{self.prog}: {message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)


# -- naming queues -------------------------------------------------------------------


def resolve(name: QueueName, proj: int) -> SysVMQ:
    """The queue QUEUE names: a key, id:N, or a path keyed with ftok."""
    if name.msqid is not None:
        try:
            return SysVMQ.attach(name.msqid)
        except QueueNotFound:
            raise CommandError(f"no queue has id {name.msqid}", EXIT_NOT_FOUND) from None
    if name.path is not None:
        try:
            key = ftok(name.path, proj)
        except FileNotFoundError:
            raise CommandError(f"{name.path!r} is not a key, an id:N, nor an existing file", EXIT_NOT_FOUND) from None
        how = f" (the key of {name.path!r} with --proj {proj})"
    else:
        assert name.key is not None
        key, how = name.key, ""
    try:
        return SysVMQ.open(key)
    except QueueNotFound:
        raise CommandError(
            f"no queue has key {key:#010x}{how} (sysvmq create {key:#x} makes one)", EXIT_NOT_FOUND
        ) from None


# -- formatting ----------------------------------------------------------------------


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "never"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def stats_json(st: QueueStats) -> Dict[str, Any]:
    """The stable JSON form of a queue's stats (times in seconds since the epoch, 0 for never)."""
    return {
        "key": f"{st.key:#010x}",
        "id": st.id,
        "owner": _owner(st.uid),
        "uid": st.uid,
        "gid": st.gid,
        "cuid": st.cuid,
        "cgid": st.cgid,
        "mode": f"{st.mode:#05o}",
        "messages": st.count,
        "bytes": st.size,
        "max_bytes": st.max_size,
        "last_send_time": st.last_send_time,
        "last_send_pid": st.last_send_pid,
        "last_receive_time": st.last_receive_time,
        "last_receive_pid": st.last_receive_pid,
        "last_change_time": st.last_change_time,
    }


def _table(rows: Sequence[Sequence[str]], out: Output) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.text("".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n" for row in rows))


_SHORT = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(data: bytes) -> bytes:
    """A message as one line of text that cannot act on a terminal.

    Printable UTF-8 stays as it is. The backslash is doubled; newline, tab and
    carriage return are \\n, \\t, \\r; any other byte that is not part of
    printable UTF-8 is \\xHH (an ASCII control or DEL, or a byte that is not
    UTF-8), and a valid but unprintable character above ASCII (C1 controls,
    bidirectional overrides, separators) is \\uHHHH or \\UHHHHHHHH. The escapes
    read back to exactly the bytes.
    """
    text = data.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:  # an undecodable byte decodes to a surrogate, never printable
        return data
    parts = []
    for ch in text:
        if ch in _SHORT:
            parts.append(_SHORT[ch])
        elif ch.isprintable():
            parts.append(ch)
        else:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
                parts.append(f"\\x{code - 0xDC00:02x}")
            elif code < 0x80:
                parts.append(f"\\x{code:02x}")
            elif code <= 0xFFFF:
                parts.append(f"\\u{code:04x}")
            else:
                parts.append(f"\\U{code:08x}")
    return "".join(parts).encode("utf-8")


def _formatter(args: argparse.Namespace) -> Callable[[Message], bytes]:
    """How recv prints one message: --json, --raw, or one escaped line (with --show-type, its type first)."""
    if args.json:
        return lambda m: (
            json.dumps({"type": m.type, "size": len(m.data), "data": base64.b64encode(m.data).decode()}) + "\n"
        ).encode()
    if args.raw:
        return lambda m: m.data
    if args.show_type:
        return lambda m: b"%d\t%s\n" % (m.type, escape(m.data))
    return lambda m: escape(m.data) + b"\n"


# -- commands --------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace, out: Output) -> None:
    found = queues()
    if args.json:
        out.text(json.dumps([stats_json(st) for st in found], indent=2) + "\n")
        return
    rows = [["KEY", "ID", "OWNER", "MODE", "MESSAGES", "BYTES", "MAX", "LAST SEND", "PID", "LAST RECEIVE", "PID"]]
    for st in found:
        rows.append(
            [
                f"{st.key:#010x}",
                str(st.id),
                _owner(st.uid),
                f"{st.mode:03o}",
                str(st.count),
                str(st.size),
                str(st.max_size),
                _when(st.last_send_time),
                str(st.last_send_pid or "-"),
                _when(st.last_receive_time),
                str(st.last_receive_pid or "-"),
            ]
        )
    _table(rows, out)


def _stats(q: SysVMQ) -> QueueStats:
    """The queue's stats: by IPC_STAT, or where this user may not read it, as ls reads every queue.

    queues() reads the kernel's table with MSG_STAT_ANY (Linux 4.17+), which needs
    no permission: what ls, top and metrics show of a queue, stat shows too.
    """
    try:
        return q.stats()
    except QueuePermissionError:
        found = [st for st in queues() if st.id == q.id]
        if not found:  # an older kernel, without MSG_STAT_ANY
            raise
        return found[0]


def cmd_stat(args: argparse.Namespace, out: Output) -> None:
    st = _stats(resolve(args.queue, args.proj))
    fields = stats_json(st)
    if args.json:
        out.text(json.dumps(fields, indent=2) + "\n")
        return
    lines = []
    for name, value in fields.items():
        if name.endswith("_time"):
            value = f"{_when(value)} ({value})"
        lines.append(f"{name:18s} {value}\n")
    out.text("".join(lines))


def _wait_args(args: argparse.Namespace) -> Dict[str, Any]:
    return {"block": not args.nowait, "timeout": args.timeout}


def _too_large(q: SysVMQ, name: QueueName, size: int, exc: MessageTooLarge) -> str:
    """Why a message does not fit, and the sysvmq command or sysctl that makes it fit."""
    lim = limits()
    if size > lim.msgmax:
        return (
            f"a message of {size} bytes is longer than kernel.msgmax ({lim.msgmax}): "
            f"as root, sysctl -w kernel.msgmax={size} allows it"
        )
    try:
        max_size = q.stats().max_size
    except QueuePermissionError:
        return (
            f"a message of {size} bytes does not fit queue {q.id}'s max size, which this user may not read: "
            f"its owner can raise it with sysvmq update {shlex.quote(name.text)} --max-size {size}"
        )
    except SysVMQError:
        return _reason(exc)
    if size > max_size:
        beyond = "" if size <= lim.msgmnb else f"; above kernel.msgmnb ({lim.msgmnb}) that needs CAP_SYS_RESOURCE"
        return (
            f"a message of {size} bytes does not fit queue {q.id}, which holds {max_size} bytes: "
            f"sysvmq update {shlex.quote(name.text)} --max-size {size} makes room{beyond}"
        )
    return _reason(exc)


def _send(q: SysVMQ, args: argparse.Namespace, data: bytes) -> None:
    try:
        q.send(data, args.type, **_wait_args(args))
    except MessageTooLarge as exc:
        raise CommandError(_too_large(q, args.queue, len(data), exc)) from None


def cmd_send(args: argparse.Namespace, out: Output) -> None:
    if args.message is not None and args.binary:
        raise UsageError("give MESSAGE or --binary (standard input), not both")
    q = resolve(args.queue, args.proj)
    if args.message is not None:
        _send(q, args, os.fsencode(args.message))  # the bytes the shell passed, UTF-8 or not
        return
    if sys.stdin is None:
        raise CommandError("standard input is closed: give MESSAGE, or lines on standard input")
    if args.binary:
        _send(q, args, sys.stdin.buffer.read())
        return
    sent = 0
    try:
        for number, line in enumerate(sys.stdin.buffer, 1):
            try:
                _send(q, args, line[:-1] if line.endswith(b"\n") else line)
            except (OSError, CommandError) as exc:
                done = f"{_plural(sent, 'line')} sent before it, none after"
                raise CommandError(f"line {number} of standard input: {_reason(exc)}; {done}", _status(exc)) from None
            sent += 1
        _nothing_left_to_interrupt(args)
    except KeyboardInterrupt:
        raise CommandError(f"interrupted: {_plural(sent, 'line')} sent, the rest not", EXIT_INTERRUPTED) from None


def _nothing_left_to_interrupt(args: argparse.Namespace) -> None:
    """The command has done all it was asked: a Ctrl-C from now on changes nothing, and is ignored.

    Otherwise it would raise KeyboardInterrupt on the way out, outside any
    handler, or in the interpreter's shutdown ("Exception ignored ... KeyboardInterrupt"),
    with a traceback and a status that says nothing true. Only when the command
    is the whole process: a caller of main() keeps its own SIGINT.
    """
    if getattr(args, "process", False):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _requeue(q: SysVMQ, message: Message) -> str:
    """Queue a message taken but not printed again; say where it went, or give its bytes if it could not go back."""
    what = f"the message taken (type {message.type}, {_plural(len(message.data), 'byte')})"
    try:
        q.send(message.data, message.type, timeout=REQUEUE_WAIT)
    except (SysVMQError, ValueError) as exc:
        data = base64.b64encode(message.data).decode()
        return f"{what} could not go back to queue {q.id} ({_reason(exc)}): its bytes, base64: {data}"
    return f"{what} went back to queue {q.id}, at the end of its type"


def _matching(q: SysVMQ, mtype: int, want: Optional[int]) -> List[Message]:
    """The messages recv --type would take, in its order, without taking them: MSG_COPY copies by position."""
    found: List[Message] = []
    index = 0
    while want is None or mtype < 0 or len(found) < want:
        try:
            message = q.peek(index)
        except QueueEmpty:
            break
        index += 1
        if mtype == 0 or message.type == mtype or (mtype < 0 and message.type <= -mtype):
            found.append(message)
    if mtype < 0:
        found.sort(key=lambda m: m.type)  # the lowest type first; stable, so oldest first within a type
    return found if want is None else found[:want]


def _unreadable(q: SysVMQ, mtype: int, peek: bool = False) -> str:
    msgmax = limits().msgmax
    if peek:  # msgrcv(2) copies (MSG_COPY) at most kernel.msgmax bytes, whatever the buffer
        return (
            f"the next message{_selector(mtype)} in queue {q.id} is longer than kernel.msgmax ({msgmax}), "
            "which was lowered since it was sent, and --peek copies no more: recv without --peek takes it"
        )
    return (
        f"the next message{_selector(mtype)} in queue {q.id} is longer than kernel.msgmax ({msgmax}), "
        "which was lowered since it was sent; it stays queued: raise the sysctl again to read it"
    )


def _take_long(q: SysVMQ, mtype: int, block: bool, timeout: Optional[float]) -> Message:
    """The next message, longer than kernel.msgmax: sent before the sysctl was lowered.

    Only msgsnd(2) is bounded by msgmax; msgrcv takes any buffer. The handle's
    buffer is msgmax long and refused it (E2BIG, left queued): it is taken again
    into a buffer as long as all the queue holds, which no message in it can
    pass (a later one is at most msgmax). MessageTooLarge only if that fails too.
    """
    buffer = bytearray(max(limits().msgmax, _stats(q).size))
    n, taken_type = q.receive_into(buffer, mtype, block=block, timeout=timeout)
    return Message(bytes(buffer[:n]), taken_type)


def _selector(mtype: int) -> str:
    if mtype == 0:
        return ""
    return f" of type {mtype}" if mtype > 0 else f" of type <= {-mtype}"


def _peek(q: SysVMQ, args: argparse.Namespace, out: Output, fmt: Callable[[Message], bytes]) -> None:
    want = None if args.all else args.count
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    pause = 0.001
    while True:
        try:
            found = _matching(q, args.type, want)
        except MessageTooLarge:
            raise CommandError(_unreadable(q, 0, peek=True)) from None
        if want is None or len(found) >= want or args.nowait:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        time.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 2, PEEK_POLL_MAX)
    for message in found:
        out.write(fmt(message))
    if want is not None and len(found) < want:
        has = f"only {len(found)}" if found else "no"
        raise CommandError(
            f"queue {q.id} holds {has} message{'s' * (want > 1)}{_selector(args.type)}", EXIT_EMPTY_OR_FULL
        )


def cmd_recv(args: argparse.Namespace, out: Output) -> None:
    if args.all and args.timeout is not None:
        raise UsageError("--all takes what is queued when it starts and never waits: drop --timeout")
    out.check()
    q = resolve(args.queue, args.proj)
    fmt = _formatter(args)
    if args.peek:
        _peek(q, args, out, fmt)
        return
    printed = 0
    mtype = args.type
    block, timeout = not args.nowait and not args.all, None if args.all else args.timeout
    deadline = None if timeout is None else time.monotonic() + timeout  # for all --count messages
    with Signals() as signals:
        left = q.stats().count if args.all else args.count  # --all: what was queued when it started, no more
        while left > 0:
            try:
                out.check()
            except OutputError as exc:
                raise OutputError(f"{exc.reason}: {printed} printed, the rest left in the queue", exc.err) from None
            message: Optional[Message] = None
            written = False
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())
            try:
                # Plain arguments: CPython 3.11+ runs no handler between the return and the store.
                try:
                    message = q.receive_message(mtype, block=block, timeout=timeout)
                except MessageTooLarge:  # longer than the handle's buffer, kernel.msgmax: still queued
                    message = _take_long(q, mtype, block, timeout)
                with signals.holding():  # taken: until it is out of the process, a signal waits
                    out.write(fmt(message))
                    written = True
                # Out of the process, maybe not yet read: a reader that goes now leaves it in the pipe, for no one.
                out.wait_read()
            except QueueEmpty:
                if args.all:
                    return
                raise
            except MessageTooLarge:
                raise CommandError(_unreadable(q, mtype)) from None
            except OutputError as exc:  # it could not be written, or its reader went without reading it
                with signals.holding():  # raised inside: a signal meanwhile must not hide where the message went
                    where = _requeue(q, message) if message is not None else "nothing taken"
                    raise OutputError(f"{exc.reason}: {where}; {printed} printed before it", exc.err) from None
            except BaseException as exc:
                # A signal stopped the command: as the kernel handed a message over (the library
                # says which, exc.received), or once it had one. What it took is printed, as asked,
                # and read; what cannot be is put back.
                with signals.holding():
                    held = [(message, written)] if message is not None else []
                    held += [(taken, False) for taken in getattr(exc, "received", ())]
                    for taken, out_already in held:
                        note = _hand_over(q, out, taken, fmt, out_already)
                        if note:
                            _stderr(f"sysvmq recv: {note}")
                raise
            printed += 1
            left -= 1


def _hand_over(q: SysVMQ, out: Output, message: Message, fmt: Callable[[Message], bytes], written: bool) -> str:
    """After a stop signal: print a message recv took, if not yet, and wait a moment for it to be read.
    What its reader does not read (gone, as Ctrl-C ends a pipeline's reader too) goes back to the
    queue. What to say of it, or "" if it was printed (a reader still there reads it later)."""
    try:
        if not written:
            out.write(fmt(message))
        out.wait_read(READER_GRACE)
    except OutputError as exc:
        return f"{exc.reason}: {_requeue(q, message)}"
    return ""


def cmd_rm(args: argparse.Namespace, out: Output) -> None:
    out.check()
    failures: List[Tuple[QueueName, BaseException]] = []
    for name in args.queues:
        try:
            q = resolve(name, args.proj)
            held: Optional[QueueStats] = None
            with contextlib.suppress(SysVMQError):  # not readable, even by MSG_STAT_ANY: the removal says
                held = _stats(q)
            q.destroy()
        except (OSError, CommandError) as exc:
            if len(args.queues) > 1:  # as rm(1): say each, go on with the rest
                _stderr(f"sysvmq rm: {name.text}: {_reason(exc)}")
            failures.append((name, exc))
            continue
        lost = ""
        if held is not None and held.count:
            # As last read, just before the removal: a sender may have added one since.
            lost = f", and the {_plural(held.count, 'message')} ({_plural(held.size, 'byte')}) it held"
        out.text(f"removed queue {q.id} (key {q.key:#010x}){lost}\n")
    if not failures:
        return
    statuses = {_status(exc) for _, exc in failures}
    status = statuses.pop() if len(statuses) == 1 else EXIT_OTHER
    if len(args.queues) == 1:
        raise CommandError(_reason(failures[0][1]), status)
    raise CommandError(f"{len(failures)} of {len(args.queues)} not removed (see above)", status)


def _max_size(text: str) -> int:
    value = _number(text, "a number of bytes")
    if not 1 <= value <= MAX_SIZE_LIMIT:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: a queue's max size is 1 to {MAX_SIZE_LIMIT} bytes "
            "(the kernel keeps no more: msgctl takes it as an int)"
        )
    return value


def _settings(st: QueueStats) -> str:
    return f"mode {st.mode:03o}, max size {st.max_size} bytes"


def cmd_create(args: argparse.Namespace, out: Output) -> None:
    if args.private == (args.key is not None):
        raise UsageError("give KEY, or --private for a queue no key reaches")
    if args.private and args.exclusive:
        raise UsageError("--exclusive goes with KEY: a --private queue is always new")
    out.check()
    mode = 0o600 if args.mode is None else args.mode
    if args.private:
        q = SysVMQ.private(mode=mode)
        what, name = f"private queue {q.id} (use it as id:{q.id})", f"private queue {q.id}"
    else:
        try:
            q = SysVMQ.create(args.key, mode=mode, exclusive=True)
        except QueueExists:
            if args.exclusive:
                raise CommandError(f"a queue has key {args.key:#010x} already (--exclusive)") from None
            _change_existing(SysVMQ.open(args.key), args, out)
            return
        what, name = f"queue {q.id} (key {q.key:#010x})", f"queue {q.id}"
    if args.max_size is not None:
        try:
            q.update(max_size=args.max_size)
        except (OSError, ValueError) as exc:
            undone = "was removed again"
            try:
                q.destroy()
            except SysVMQError as cleanup:
                undone = f"could not be removed ({_reason(cleanup)}): sysvmq rm id:{q.id}"
            raise CommandError(f"{_reason(exc)}; the {name} it had created {undone}", _status(exc)) from None
    out.text(f"created {what}\n")


def _change_existing(q: SysVMQ, args: argparse.Namespace, out: Output) -> None:
    """create KEY on an existing queue: apply --mode and --max-size if given, in one IPC_SET, or nothing."""
    what = f"queue {q.id} (key {q.key:#010x})"
    if args.mode is None and args.max_size is None:
        out.text(f"exists: {what}\n")
        return
    try:
        # As ls reads it (MSG_STAT_ANY) where this user may not: the update then says what stops it (not the owner).
        before = _stats(q)
        q.update(mode=args.mode, max_size=args.max_size)
    except (OSError, ValueError) as exc:
        raise CommandError(f"{what} exists; {_reason(exc)}; nothing changed", _status(exc)) from None
    out.text(f"exists: {what}; now {_settings(_stats(q))} (was {_settings(before)})\n")


def cmd_update(args: argparse.Namespace, out: Output) -> None:
    if args.mode is None and args.max_size is None and args.uid is None and args.gid is None:
        raise UsageError("give at least one of --mode, --max-size, --uid, --gid")
    out.check()
    q = resolve(args.queue, args.proj)
    try:
        q.update(max_size=args.max_size, mode=args.mode, uid=args.uid, gid=args.gid)
    except (OSError, ValueError) as exc:
        raise CommandError(f"{_reason(exc)}; nothing changed", _status(exc)) from None
    st = q.stats()
    out.text(f"queue {q.id}: mode {st.mode:03o}, max {st.max_size} bytes, owner {_owner(st.uid)}:{st.gid}\n")


def cmd_key(args: argparse.Namespace, out: Output) -> None:
    try:
        key = ftok(args.path, args.proj)
    except FileNotFoundError:
        raise CommandError(f"{args.path!r}: no such file", EXIT_NOT_FOUND) from None
    out.text(f"{key:#010x}\n")


def cmd_limits(args: argparse.Namespace, out: Output) -> None:
    lim, use = limits(), usage()
    if args.json:
        doc = {
            "limits": {name: getattr(lim, name) for name in SYSCTLS},
            "sysctls": SYSCTLS,
            "usage": {"queues": use.queues, "messages": use.messages, "bytes": use.bytes},
        }
        out.text(json.dumps(doc, indent=2) + "\n")
        return
    notes = {
        "msgmax": "the longest message, in bytes",
        "msgmnb": "the bytes a new queue holds (its max_size)",
        "msgmni": "how many queues may exist",
    }
    text = "".join(f"{sysctl:14s} {getattr(lim, name):>10}  {notes[name]}\n" for name, sysctl in SYSCTLS.items())
    out.text(text + f"\nin use now: {use.queues} queues, {use.messages} messages, {use.bytes} bytes\n")


def _message_size(option: str, size: int) -> None:
    """A --size the kernel takes: at most kernel.msgmax, and no more than a new queue holds."""
    lim = limits()
    if size > lim.msgmax:
        raise UsageError(
            f"argument {option}: {size} bytes is more than kernel.msgmax ({lim.msgmax}), the longest message"
        )
    if size > lim.msgmnb:
        raise UsageError(
            f"argument {option}: {size} bytes is more than a new queue holds (kernel.msgmnb, {lim.msgmnb})"
        )


def cmd_bench(args: argparse.Namespace, out: Output) -> None:
    _message_size("--size", max(args.size, _bench.STAMP.size))
    if args.plot:
        # Fail before the run if the file cannot be written, or matplotlib is missing.
        why = _plot.unwritable(args.plot)
        if why:
            raise CommandError(f"argument --plot: {why}")
        _plot.pyplot()
    out.check()
    progress = sys.stderr if sys.stderr is not None and sys.stderr.isatty() else None
    note = (lambda text: _stderr(f"sysvmq bench: {text}")) if args.verbose else None
    result = _bench.run(
        size=args.size,
        messages=args.messages,
        producers=args.producers,
        consumers=args.consumers,
        rate=args.rate,
        progress=progress,
        note=note,
    )
    samples = result.pop("latency_samples_ns")
    failed: Optional[BaseException] = None
    if args.plot:
        try:
            _plot.latency(result, samples, args.plot)
        except (OSError, ValueError) as exc:  # checked before the run, but a disk fills, a file goes
            failed = exc
    out.text(
        (json.dumps(result, indent=2) if args.json else _bench.describe(result)) + "\n"
    )  # the run's figures, whatever
    if failed is not None:
        strerror = getattr(failed, "strerror", None) or _reason(failed)
        raise CommandError(f"argument --plot: cannot write {args.plot}: {strerror} (the figures are above)")


def cmd_demo(args: argparse.Namespace, out: Output) -> None:
    _message_size("--size", args.size)
    out.check()
    (_demo.run_asyncio if args.asyncio else _demo.run)(out.text, messages=args.messages, size=args.size)


# -- the parser ---------------------------------------------------------------------

MAX_WORKERS = 64


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sysvmq",
        description="List, inspect, send to, receive from, create, update and remove System V message queues.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(
        name: str, help: str, func: Callable[[argparse.Namespace, Output], None], description: str = ""
    ) -> argparse.ArgumentParser:
        text = help[0].upper() + help[1:] + "."
        if description:
            text += "\n\n" + textwrap.fill(description, 79)
        c = sub.add_parser(name, help=help, description=text, epilog=EPILOG, formatter_class=p.formatter_class)
        c._intermixed = True
        c.set_defaults(func=func, parser=c)
        return c

    def proj_arg(c: argparse.ArgumentParser, what: str) -> None:
        c.add_argument(
            "--proj",
            type=_proj,
            default=1,
            metavar="N",
            help=f"ftok project id for {what}: 1 to 255, or one character as in C's ftok(path, 'A') (default 1)",
        )

    def queue_arg(c: argparse.ArgumentParser, nargs: Optional[str] = None) -> None:
        if nargs:
            c.add_argument("queues", nargs=nargs, type=_queue, metavar="QUEUE", help="a key, id:N, or a path")
        else:
            c.add_argument("queue", type=_queue, metavar="QUEUE", help="a key, id:N, or a path")
        proj_arg(c, "a path QUEUE")

    def json_arg(c: argparse.ArgumentParser, fields: str = "fields in README.md") -> None:
        c.add_argument("--json", action="store_true", help=f"print JSON ({fields})")

    def wait_args(c: argparse.ArgumentParser, what: str) -> None:
        g = c.add_mutually_exclusive_group()
        g.add_argument("--nowait", action="store_true", help=f"do not wait: exit 5 at once if {what}")
        g.add_argument(
            "--timeout",
            type=_seconds,
            metavar="S",
            help="wait at most S seconds in all (for every --count message), then exit 5 (default: wait for ever)",
        )

    c = command("ls", "list every queue you may see, as ipcs -q does, with more", cmd_ls)
    json_arg(c)

    c = command("stat", "show one queue's full stats", cmd_stat)
    queue_arg(c)
    json_arg(c)

    c = command(
        "send",
        "send MESSAGE, or each line of standard input as one message",
        cmd_send,
        "Each line is sent without its newline; a line that cannot be sent ends the command, which says "
        "its number and how many were sent before it.",
    )
    queue_arg(c)
    c.add_argument("message", nargs="?", metavar="MESSAGE", help="the message: the bytes the shell passes")
    c.add_argument(
        "--type",
        type=_whole("a message type", 1, _LONG_MAX),
        default=1,
        metavar="N",
        help=f"message type, 1 to {_LONG_MAX} (default 1)",
    )
    c.add_argument("--binary", action="store_true", help="send standard input whole, as one message")
    wait_args(c, "the queue is full")

    c = command(
        "recv",
        "receive and print one message, --count N, or --all queued now",
        cmd_recv,
        "A message is printed as one line: printable UTF-8 as it is, and the backslash, control characters "
        "and bytes that are not UTF-8 escaped (\\\\, \\n, \\t, \\r, \\xHH, \\uHHHH). A message taken that "
        "cannot be written goes back to the queue, and recv exits non-zero.",
    )
    queue_arg(c)
    c.add_argument(
        "--type",
        type=_whole("a message type", -_LONG_MAX, _LONG_MAX),
        default=0,
        metavar="N",
        help="0 any (default), N the oldest of type N, -N the lowest type <= N",
    )
    g = c.add_mutually_exclusive_group()
    g.add_argument(
        "--count",
        type=_whole("a count", 1, _LONG_MAX),
        default=1,
        metavar="N",
        help="take N messages, waiting for each (default 1)",
    )
    g.add_argument(
        "--all", action="store_true", help="take the messages queued when it starts (at most), without waiting"
    )
    c.add_argument(
        "--peek",
        action="store_true",
        help="copy messages without taking them, in the order recv would take them (Linux MSG_COPY)",
    )
    wait_args(c, "there is no message")
    f = c.add_mutually_exclusive_group()
    f.add_argument("--json", action="store_true", help="one JSON object a message: type, size, base64 data")
    f.add_argument("--raw", action="store_true", help="the messages' bytes as they are, nothing added (for pipes)")
    f.add_argument("--show-type", action="store_true", help="print each message's type, then a tab, then it")

    c = command(
        "rm",
        "remove queues (their messages are lost)",
        cmd_rm,
        "Every QUEUE is tried; each failure is reported, and the exit status is that of the failures "
        "(1 if they differ).",
    )
    queue_arg(c, nargs="+")

    c = command(
        "create",
        "create the queue with KEY, or a --private one (or say that it exists)",
        cmd_create,
        "On a queue that exists, --mode and --max-size are applied together (one IPC_SET) or not at "
        "all. A new queue whose --max-size is refused is removed again: either all is done, or nothing.",
    )
    c.add_argument("key", nargs="?", type=_create_key, metavar="KEY", help="0xDEADC0DE or decimal (not 0)")
    c.add_argument("--private", action="store_true", help="create a new queue no key reaches (IPC_PRIVATE)")
    c.add_argument("--mode", type=_mode, help="permission bits in octal (default 600 for a new queue)")
    c.add_argument(
        "--max-size",
        type=_max_size,
        metavar="N",
        help="bytes the queue holds (default kernel.msgmnb); above kernel.msgmnb needs CAP_SYS_RESOURCE",
    )
    c.add_argument("--exclusive", action="store_true", help="fail (exit 1) if a queue has KEY already")

    c = command(
        "update",
        "change a queue's mode, max size or owner",
        cmd_update,
        "All the changes are made together (one IPC_SET), or none.",
    )
    queue_arg(c)
    c.add_argument("--mode", type=_mode, help="permission bits in octal, as 660 or 0o660 (default: unchanged)")
    c.add_argument(
        "--max-size",
        type=_max_size,
        metavar="N",
        help="bytes the queue holds; above kernel.msgmnb needs CAP_SYS_RESOURCE (default: unchanged)",
    )
    c.add_argument(
        "--uid",
        type=_owner_id(pwd.getpwnam, "user"),
        metavar="USER",
        help="new owner, a name or a number (default: unchanged)",
    )
    c.add_argument(
        "--gid",
        type=_owner_id(grp.getgrnam, "group"),
        metavar="GROUP",
        help="new group, a name or a number (default: unchanged)",
    )

    c = command("key", "print the key ftok(3) gives a path, as a QUEUE path is keyed", cmd_key)
    c.add_argument("path", metavar="PATH", help="an existing file or directory")
    proj_arg(c, "the key")

    c = command("limits", "the kernel's limits (and the sysctls that set them), and what is in use", cmd_limits)
    json_arg(c)

    c = command(
        "bench",
        "measure throughput and latency between processes on a private queue",
        cmd_bench,
        "Whatever ends it (Ctrl-C, SIGTERM, SIGHUP, a worker that dies), its processes end and its queue is removed.",
    )
    c.add_argument(
        "--size",
        type=_whole("a message size", 1, _INT_MAX),
        default=64,
        metavar="BYTES",
        help="bytes a message, up to kernel.msgmax (default 64)",
    )
    c.add_argument(
        "--messages",
        type=_whole("a count", 1, _LONG_MAX),
        default=200_000,
        metavar="N",
        help="messages to move at full speed (default 200000)",
    )
    c.add_argument(
        "--producers",
        type=_whole("a number of processes", 1, MAX_WORKERS),
        default=1,
        metavar="P",
        help=f"sending processes, 1 to {MAX_WORKERS} (default 1)",
    )
    c.add_argument(
        "--consumers",
        type=_whole("a number of processes", 1, MAX_WORKERS),
        default=1,
        metavar="C",
        help=f"receiving processes, 1 to {MAX_WORKERS} (default 1)",
    )
    c.add_argument(
        "--rate",
        type=_whole("a rate", 1, _INT_MAX),
        metavar="R",
        help="messages/s for the latency phase (default: a tenth of the measured throughput)",
    )
    c.add_argument(
        "-v", "--verbose", action="store_true", help="say on standard error which queue it made, and that it removed it"
    )
    c.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the latency distribution to FILE.png (needs matplotlib; checked before the run)",
    )
    json_arg(c)

    c = command(
        "demo",
        "two processes exchange messages through a private queue, with figures",
        cmd_demo,
        "Whatever ends it, its worker ends and its queue is removed.",
    )
    c.add_argument(
        "--messages",
        type=_whole("a count", 1, _LONG_MAX),
        default=100_000,
        metavar="N",
        help="messages in the stream (default 100000)",
    )
    c.add_argument(
        "--size",
        type=_whole("a message size", 1, _INT_MAX),
        default=64,
        metavar="BYTES",
        help="bytes per streamed message, up to kernel.msgmax (default 64)",
    )
    c.add_argument(
        "--asyncio", action="store_true", help="the same exchange, the parent's side in asyncio tasks (sysvmq.asyncio)"
    )

    c = command(
        "top", "a live view of the queues: how full, how fast they fill", lambda a, o: _top.cmd_top(a, o.as_text())
    )
    _top.top_arguments(c)
    c = command(
        "metrics", "the queues in the Prometheus text format, once", lambda a, o: _metrics.cmd_metrics(a, o.as_text())
    )
    _metrics.metrics_arguments(c)
    c = command(
        "exporter",
        "serve the same metrics over HTTP for Prometheus",
        lambda a, o: _exporter.cmd_exporter(a, o.as_text()),
    )
    _exporter.exporter_arguments(c)
    return p


# -- running --------------------------------------------------------------------------


_WAITED = {"msgrcv": "recv", "msgsnd": "send"}


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and text.startswith("[Errno"):
        text = text.split("] ", 1)[-1]  # the message names the queue and the cause already
    raw = ": " + os.strerror(errno.EIDRM)
    if isinstance(exc, QueueRemoved) and text.endswith(raw):
        # EIDRM: the queue was removed while the call slept on it (msgop(2)); strerror says "Identifier removed".
        who = _WAITED.get(text.split(" ", 1)[0], "the command")
        text = text[: -len(raw)] + f": the queue was removed while {who} waited"
    return text


def _status(exc: BaseException) -> int:
    if isinstance(exc, CommandError):
        return exc.status
    if isinstance(exc, (QueueNotFound, QueueRemoved, FileNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(exc, (QueuePermissionError, PermissionError)):
        return EXIT_PERMISSION
    if isinstance(exc, (QueueEmpty, QueueFull)):
        return EXIT_EMPTY_OR_FULL
    if isinstance(exc, (ValueError, TypeError)):
        return EXIT_USAGE  # the library's promise: a bad argument, found before any system call
    return EXIT_OTHER


# Commands that print only what they read, and so may die of SIGPIPE as ls(1) does
# when their reader goes (| head). The others handle a closed output themselves.
QUIET_ON_SIGPIPE = {"ls", "stat", "key", "limits"}


def main(argv: Optional[List[str]] = None, *, process: bool = False) -> int:
    """Run the command line; returns the exit status (usage errors exit 2 through SystemExit).

    ``process``: this is the whole process (the console script), so the
    command may set SIGPIPE's disposition for itself.
    """
    args = parser().parse_args(argv)
    args.process = process
    if process and args.command not in QUIET_ON_SIGPIPE:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # EPIPE, handled, instead of a silent death
    out = Output(sys.stdout)
    try:
        args.func(args, out)
        _nothing_left_to_interrupt(args)
    except UsageError as exc:
        args.parser.error(str(exc))
    except Stopped as exc:
        return 128 + exc.signum
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (OSError, ValueError, TypeError, CommandError, WorkerFailed) as exc:
        if isinstance(exc, OutputError) and exc.err == errno.EPIPE and args.command in ("bench", "demo"):
            return exc.status  # the reader went (| head): as SIGPIPE would, quietly, once cleaned up
        text = _reason(exc)
        cleanup = getattr(exc, "cleanup_error", None)
        if cleanup is not None:
            text += f" (and then cleaning up failed: {_reason(cleanup)})"
        _stderr(f"sysvmq {args.command}: {text}")
        return _status(exc)
    return 0


def run() -> None:
    """The console script and ``python -m sysvmq``."""
    # Until the command is known, end quietly when the reader goes (| head), as other tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(process=True))
