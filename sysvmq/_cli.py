"""The ``sysvmq`` command for operators: list, inspect, send, receive, remove, limits, bench, demo.

Built on the public API only. Errors print one line naming the queue and the
cause, and exit with a status per class (see EXIT below); Ctrl-C exits 130
and leaves the queue as it was.
"""

import argparse
import base64
import contextlib
import errno
import json
import os
import pwd
import select
import signal
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO

from . import __version__, _bench, _demo
from ._errors import QueueEmpty, QueueExists, QueueFull, QueueNotFound, QueuePermissionError, QueueRemoved
from ._procs import Stopped, WorkerFailed
from ._queue import SysVMQ, ftok, limits, queues, usage
from ._stats import Message, QueueStats

EXIT_OTHER, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PERMISSION, EXIT_EMPTY_OR_FULL, EXIT_INTERRUPTED = 1, 2, 3, 4, 5, 130
EXIT_READER_GONE = 128 + signal.SIGPIPE  # 141, as a process killed by SIGPIPE

EPILOG = """\
QUEUE is a key (0xDEADC0DE or decimal), id:N for a queue id as `ipcs -q`
shows it, or the path of an existing file (keyed with ftok(3); --proj picks
the project id).

exit status: 0 success, 1 other errors, 2 usage, 3 queue not found (or
removed), 4 permission denied, 5 empty, full or timed out (with --nowait or
--timeout), 130 interrupted (Ctrl-C; the queue is left as it was).
"""

SYSCTLS = {"msgmax": "kernel.msgmax", "msgmnb": "kernel.msgmnb", "msgmni": "kernel.msgmni"}


class CommandError(Exception):
    """A failure to report in one line with an exit status."""

    def __init__(self, message: str, status: int = EXIT_OTHER) -> None:
        super().__init__(message)
        self.status = status


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
        if stream is not None:  # None when the command started with its standard output closed
            try:
                stream.flush()
                self.fd = stream.fileno()
            except (OSError, ValueError, AttributeError):
                self.fd = None

    def _reader_gone(self) -> bool:
        assert self.fd is not None
        poller = select.poll()
        poller.register(self.fd, 0)  # POLLERR, POLLHUP and POLLNVAL are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))

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

    @staticmethod
    def _error(exc: OSError) -> OutputError:
        if exc.errno == errno.EPIPE:
            return OutputError("standard output's reader has gone", exc.errno)
        return OutputError(f"cannot write to standard output ({exc.strerror})", exc.errno)


def _stderr(line: str) -> None:
    """One line on standard error, as bytes: an error report must not fail for want of an encoding."""
    data = (line.rstrip("\n") + "\n").encode("utf-8", "backslashreplace")
    with contextlib.suppress(OSError):
        os.write(2, data)


# -- naming queues --------------------------------------------------------------


def _int(text: str) -> int:
    return int(text, 0)


def resolve(spec: str, proj: int) -> SysVMQ:
    """The queue QUEUE names: a key, id:N, or a path keyed with ftok."""
    if spec.startswith("id:"):
        try:
            msqid = int(spec[3:], 0)
        except ValueError:
            raise CommandError(f"{spec!r}: an id is a number, as in id:32768", EXIT_USAGE) from None
        return SysVMQ.attach(msqid)
    try:
        key = int(spec, 0)
    except ValueError:
        try:
            key = ftok(spec, proj)
        except FileNotFoundError:
            raise CommandError(f"{spec!r} is not a key, an id:N, nor an existing file", EXIT_NOT_FOUND) from None
    try:
        return SysVMQ.open(key)
    except QueueNotFound:
        raise CommandError(f"no queue has key {key:#010x} (sysvmq create {key:#x} makes one)", EXIT_NOT_FOUND) from None


# -- formatting ----------------------------------------------------------------


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "never"


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


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")


def _text(data: bytes) -> str:
    """Text where the bytes are UTF-8, backslash escapes where they are not."""
    return data.decode("utf-8", "backslashreplace")


def _message_json(message: Message) -> str:
    return json.dumps(
        {"type": message.type, "size": len(message.data), "data": base64.b64encode(message.data).decode()}
    )


# -- commands ------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace, out: TextIO) -> None:
    found = queues()
    if args.json:
        out.write(json.dumps([stats_json(st) for st in found], indent=2) + "\n")
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


def cmd_stat(args: argparse.Namespace, out: TextIO) -> None:
    st = resolve(args.queue, args.proj).stats()
    fields = stats_json(st)
    if args.json:
        out.write(json.dumps(fields, indent=2) + "\n")
        return
    for name, value in fields.items():
        if name.endswith("_time"):
            value = f"{_when(value)} ({value})"
        out.write(f"{name:18s} {value}\n")


def _wait_args(args: argparse.Namespace) -> Dict[str, Any]:
    return {"block": not args.nowait, "timeout": args.timeout}


def cmd_send(args: argparse.Namespace, out: TextIO) -> None:
    q = resolve(args.queue, args.proj)
    wait = _wait_args(args)
    if args.message is not None:
        if args.binary:
            raise CommandError("give MESSAGE or --binary (standard input), not both", EXIT_USAGE)
        q.send(args.message, args.type, **wait)
    elif args.binary:
        q.send(sys.stdin.buffer.read(), args.type, **wait)
    else:
        for line in sys.stdin.buffer:
            q.send(line[:-1] if line.endswith(b"\n") else line, args.type, **wait)


def _taken(q: SysVMQ, args: argparse.Namespace) -> Iterator[Message]:
    """The messages recv prints: --count N of them, or --all queued now, or one."""
    if args.peek:
        index = 0
        while args.all or index < args.count:
            try:
                yield q.peek(index)
            except QueueEmpty:
                if args.all:
                    return
                raise
            index += 1
        return
    if args.all:
        while True:
            try:
                yield q.receive_message(args.type, block=False)
            except QueueEmpty:
                return
    for _ in range(args.count):
        yield q.receive_message(args.type, **_wait_args(args))


def cmd_recv(args: argparse.Namespace, out: TextIO) -> None:
    q = resolve(args.queue, args.proj)
    for message in _taken(q, args):
        out.write((_message_json(message) if args.json else _text(message.data)) + "\n")
        out.flush()


def cmd_rm(args: argparse.Namespace, out: TextIO) -> None:
    for spec in args.queues:
        q = resolve(spec, args.proj)
        q.destroy()
        out.write(f"removed queue {q.id} (key {q.key:#010x})\n")


def cmd_create(args: argparse.Namespace, out: TextIO) -> None:
    try:
        key = int(args.key, 0)
    except ValueError:
        raise CommandError(f"{args.key!r} is not a key (0xDEADC0DE or decimal)", EXIT_USAGE) from None
    try:
        q = SysVMQ.create(key, mode=args.mode, exclusive=True)
        verb = "created"
    except QueueExists:
        if args.exclusive:
            raise
        q = SysVMQ.open(key)
        verb = "exists:"
    if args.max_size is not None:
        q.update(max_size=args.max_size)
    out.write(f"{verb} queue {q.id} (key {q.key:#010x})\n")


def cmd_update(args: argparse.Namespace, out: TextIO) -> None:
    q = resolve(args.queue, args.proj)
    q.update(max_size=args.max_size, mode=args.mode, uid=args.uid, gid=args.gid)
    st = q.stats()
    out.write(f"queue {q.id}: mode {st.mode:03o}, max {st.max_size} bytes, owner {_owner(st.uid)}:{st.gid}\n")


def cmd_limits(args: argparse.Namespace, out: TextIO) -> None:
    lim, use = limits(), usage()
    if args.json:
        doc = {
            "limits": {name: getattr(lim, name) for name in SYSCTLS},
            "sysctls": SYSCTLS,
            "usage": {"queues": use.queues, "messages": use.messages, "bytes": use.bytes},
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    notes = {
        "msgmax": "the longest message, in bytes",
        "msgmnb": "the bytes a new queue holds (its max_size)",
        "msgmni": "how many queues may exist",
    }
    for name, sysctl in SYSCTLS.items():
        out.write(f"{sysctl:14s} {getattr(lim, name):>10}  {notes[name]}\n")
    out.write(f"\nin use now: {use.queues} queues, {use.messages} messages, {use.bytes} bytes\n")


def _message_size(size: int) -> None:
    """A --size the kernel takes: at most kernel.msgmax, and no more than a new queue holds."""
    lim = limits()
    if size > lim.msgmax:
        raise CommandError(
            f"argument --size: {size} bytes is more than kernel.msgmax ({lim.msgmax}), the longest message", EXIT_USAGE
        )
    if size > lim.msgmnb:
        raise CommandError(
            f"argument --size: {size} bytes is more than a new queue holds (kernel.msgmnb, {lim.msgmnb})", EXIT_USAGE
        )


def cmd_bench(args: argparse.Namespace, out: TextIO) -> None:
    _message_size(max(args.size, _bench.STAMP.size))
    output = Output(out)
    output.check()
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
    output.text((json.dumps(result, indent=2) if args.json else _bench.describe(result)) + "\n")


def cmd_demo(args: argparse.Namespace, out: TextIO) -> None:
    _message_size(args.size)
    output = Output(out)  # bytes straight to the descriptor: a reader that goes is seen at once
    output.check()
    _demo.run(output.text, messages=args.messages, size=args.size)


# -- the parser ----------------------------------------------------------------


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _positive(text: str) -> int:
    value = int(text, 0)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def _mode(text: str) -> int:
    value = int(text, 8) if not text.startswith(("0o", "0O", "0x")) else int(text, 0)
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not a mode (0 to 0o777)")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sysvmq",
        description="List, inspect, send to, receive from, create and remove System V message queues.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func: Callable[[argparse.Namespace, TextIO], None]) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help, epilog=EPILOG, formatter_class=p.formatter_class)
        c.set_defaults(func=func)
        return c

    def queue_arg(c: argparse.ArgumentParser, nargs: Optional[str] = None) -> None:
        if nargs:
            c.add_argument("queues", nargs=nargs, metavar="QUEUE", help="a key, id:N, or a path")
        else:
            c.add_argument("queue", metavar="QUEUE", help="a key, id:N, or a path")
        c.add_argument("--proj", type=_int, default=1, help="ftok project id for a path QUEUE (1..255; default 1)")

    def json_arg(c: argparse.ArgumentParser) -> None:
        c.add_argument("--json", action="store_true", help="print JSON (fields in README.md)")

    def wait_args(c: argparse.ArgumentParser) -> None:
        g = c.add_mutually_exclusive_group()
        g.add_argument("--nowait", action="store_true", help="do not wait: exit 5 at once if it cannot")
        g.add_argument("--timeout", type=_seconds, metavar="S", help="wait at most S seconds, then exit 5")

    c = command("ls", "list every queue you may see, as ipcs -q does, with more", cmd_ls)
    json_arg(c)

    c = command("stat", "show one queue's full stats", cmd_stat)
    queue_arg(c)
    json_arg(c)

    c = command("send", "send MESSAGE, or each line of standard input as one message", cmd_send)
    queue_arg(c)
    c.add_argument("message", nargs="?", metavar="MESSAGE", help="the message (sent as UTF-8)")
    c.add_argument("--type", type=_positive, default=1, help="message type, 1 or more (default 1)")
    c.add_argument("--binary", action="store_true", help="send standard input whole, as one message")
    wait_args(c)

    c = command("recv", "receive (and print) one message, --count N, or --all queued now", cmd_recv)
    queue_arg(c)
    c.add_argument("--type", type=_int, default=0, help="0 any (default), N that type, -N the lowest type <= N")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--count", type=_positive, default=1, help="take N messages (default 1)")
    g.add_argument("--all", action="store_true", help="take what is queued now, without waiting")
    c.add_argument("--peek", action="store_true", help="copy messages without taking them (index order)")
    wait_args(c)
    c.add_argument("--json", action="store_true", help="one JSON object a message: type, size, base64 data")

    c = command("rm", "remove queues (their messages are lost)", cmd_rm)
    queue_arg(c, nargs="+")

    c = command("create", "create the queue with KEY (or say that it exists)", cmd_create)
    c.add_argument("key", metavar="KEY", help="0xDEADC0DE or decimal")
    c.add_argument("--mode", type=_mode, default=0o600, help="permission bits (default 0o600)")
    c.add_argument("--max-size", type=_positive, help="bytes the queue holds (default kernel.msgmnb)")
    c.add_argument("--exclusive", action="store_true", help="fail (exit 1) if it exists already")

    c = command("update", "change a queue's mode, max size or owner", cmd_update)
    queue_arg(c)
    c.add_argument("--mode", type=_mode)
    c.add_argument("--max-size", type=_positive)
    c.add_argument("--uid", type=_int)
    c.add_argument("--gid", type=_int)

    c = command("limits", "the kernel's limits (and the sysctls that set them), and what is in use", cmd_limits)
    json_arg(c)

    c = command("bench", "measure throughput and latency between processes on a private queue", cmd_bench)
    c.add_argument("--size", type=_positive, default=64, help="bytes a message (default 64)")
    c.add_argument("--messages", type=_positive, default=200_000, help="messages to move at full speed")
    c.add_argument("--producers", type=_positive, default=1, help="sending processes (default 1)")
    c.add_argument("--consumers", type=_positive, default=1, help="receiving processes (default 1)")
    c.add_argument("--rate", type=_positive, help="messages/s for latency (default: a tenth of the throughput)")
    c.add_argument(
        "-v", "--verbose", action="store_true", help="say on standard error which queue it made, and that it removed it"
    )
    json_arg(c)

    c = command("demo", "two processes exchange messages through a private queue, with figures", cmd_demo)
    c.add_argument("--messages", type=_positive, default=100_000, help="messages in the stream (100000)")
    c.add_argument("--size", type=_positive, default=64, help="bytes per streamed message (64)")
    return p


def _status(exc: BaseException) -> int:
    if isinstance(exc, (QueueNotFound, QueueRemoved, FileNotFoundError)):
        return EXIT_NOT_FOUND
    if isinstance(exc, (QueuePermissionError, PermissionError)):
        return EXIT_PERMISSION
    if isinstance(exc, (QueueEmpty, QueueFull)):
        return EXIT_EMPTY_OR_FULL
    if isinstance(exc, CommandError):
        return exc.status
    return EXIT_OTHER


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        args.func(args, sys.stdout)
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


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and text.startswith("[Errno"):
        text = text.split("] ", 1)[-1]  # the message names the queue and the cause already
    return text


def run() -> None:
    """The console script and ``python -m sysvmq``: ends quietly when its reader goes (| head), as other tools do."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
