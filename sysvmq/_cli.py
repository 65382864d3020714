"""The ``sysvmq`` command for operators: list, inspect, send, receive, remove, limits, bench, demo.

Built on the public API only. Errors print one line naming the queue and the
cause, and exit with a status per class (see EXIT below); Ctrl-C exits 130
and leaves the queue as it was.
"""

import argparse
import base64
import json
import pwd
import signal
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO

from . import __version__, _bench, _demo, _exporter, _metrics, _plot, _top
from ._errors import QueueEmpty, QueueExists, QueueFull, QueueNotFound, QueuePermissionError, QueueRemoved
from ._kernel import ftok, limits, queues, usage
from ._queue import SysVMQ
from ._stats import Message, QueueStats

EXIT_OTHER, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PERMISSION, EXIT_EMPTY_OR_FULL, EXIT_INTERRUPTED = 1, 2, 3, 4, 5, 130

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


def cmd_bench(args: argparse.Namespace, out: TextIO) -> None:
    if args.plot:
        _plot.pyplot()  # fail before the run if matplotlib is missing
    progress = sys.stderr if sys.stderr.isatty() else None
    result = _bench.run(
        size=args.size,
        messages=args.messages,
        producers=args.producers,
        consumers=args.consumers,
        rate=args.rate,
        progress=progress,
    )
    samples = result.pop("latency_samples_ns")
    if args.plot:
        _plot.latency(result, samples, args.plot)
    out.write((json.dumps(result, indent=2) if args.json else _bench.describe(result)) + "\n")


def cmd_demo(args: argparse.Namespace, out: TextIO) -> None:
    _demo.run(out, messages=args.messages, size=args.size)


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
    c.add_argument("--plot", metavar="FILE.png", help="draw the latency distribution to FILE.png (needs matplotlib)")
    json_arg(c)

    c = command("demo", "two processes exchange messages through a private queue, with figures", cmd_demo)
    c.add_argument("--messages", type=_positive, default=100_000, help="messages in the stream (100000)")
    c.add_argument("--size", type=_positive, default=64, help="bytes per streamed message (64)")

    c = command("top", "a live view of the queues: how full, how fast they fill", _top.cmd_top)
    _top.top_arguments(c)
    c = command("metrics", "the queues in the Prometheus text format, once", _metrics.cmd_metrics)
    _metrics.metrics_arguments(c)
    c = command("exporter", "serve the same metrics over HTTP for Prometheus", _exporter.cmd_exporter)
    _exporter.exporter_arguments(c)
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
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (OSError, ValueError, TypeError, CommandError) as exc:
        text = str(exc)
        if text.startswith("[Errno"):
            text = text.split("] ", 1)[-1]  # the message names the queue and the cause already
        print(f"sysvmq {args.command}: {text}", file=sys.stderr)
        return _status(exc)
    return 0


def run() -> None:
    """The console script and ``python -m sysvmq``: ends quietly when its reader goes (| head), as other tools do."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
