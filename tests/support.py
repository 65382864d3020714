"""Helpers the tests share: the registry of queues made, and ways to wait on the kernel."""

import contextlib
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from types import FrameType
from typing import Callable, Dict, List, Optional, Set, Tuple, Union

import pytest

import sysvmq
from sysvmq import SysVMQ

# The range of a message type: C long, as the struct module (not sysvmq) sizes it here.
# 2**63-1 on 64-bit Linux, 2**31-1 on 32-bit (i386, arm).
LONG_MAX = (1 << (8 * struct.calcsize("l") - 1)) - 1
LONG_MIN = -LONG_MAX - 1

# Every queue id the suite has made, in this process or reported by a child.
CREATED: Set[int] = set()

# A process that removes them if the suite ends without its cleanup (pytest-timeout ends a
# hung run with os._exit, and SIGKILL leaves no chance): it hears each id as it is made, and
# "done" once the suite has removed its own. Started by conftest.py.
REAPER = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the suite, which cleans up itself
import sysvmq
made = []
for line in sys.stdin:
    if line == "done\n":
        sys.exit(0)
    made.append(int(line))
for msqid in made:
    try:
        sysvmq.SysVMQ.attach(msqid).destroy()
    except sysvmq.SysVMQError:
        continue  # removed already
    print(f"sysvmq tests: removed queue {msqid}, left behind by a suite that was cut short", file=sys.stderr)
"""
_reaper: "Optional[subprocess.Popen[bytes]]" = None


def start_reaper() -> None:
    global _reaper
    _reaper = subprocess.Popen([sys.executable, "-c", REAPER], stdin=subprocess.PIPE, start_new_session=True)


def stop_reaper() -> None:
    """The suite removed what it made: the reaper ends, removing nothing."""
    global _reaper
    if _reaper is not None and _reaper.stdin is not None:
        _reaper.stdin.write(b"done\n")
        _reaper.stdin.close()
        _reaper.wait(30)
    _reaper = None


def note_created(msqid: int) -> None:
    """A queue the suite made (here, or in a child that said its id): the session removes it."""
    CREATED.add(msqid)
    if _reaper is not None and _reaper.stdin is not None:
        _reaper.stdin.write(b"%d\n" % msqid)
        _reaper.stdin.flush()


def register(q: SysVMQ) -> SysVMQ:
    note_created(q.id)
    return q


def exists(msqid: int) -> bool:
    try:
        SysVMQ.attach(msqid).stats()
    except (sysvmq.QueueNotFound, sysvmq.QueueRemoved):
        return False
    return True


def remove(q: SysVMQ) -> None:
    with contextlib.suppress(sysvmq.QueueRemoved):
        q.destroy()


def fill(q: SysVMQ, size: int = 1024) -> int:
    """Fill the queue with messages of ``size`` bytes until it is full; returns how many."""
    n = 0
    while True:
        try:
            q.send(b"f" * size, block=False)
        except sysvmq.QueueFull:
            return n
        n += 1


def run_python(code: str, *args: str, timeout: float = 60, check: bool = True) -> "subprocess.CompletedProcess[str]":
    """Run a snippet in a new interpreter (the same one as the tests) and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# Tests that raise at every bytecode set f_trace_opcodes from a trace function's call event.
# CPython 3.12 (sys.monitoring) then reports no bytecode of a code object's first traced call,
# and 3.13.0 none at all; there, as on 3.11, real handlers run only at calls and backward jumps.
opcode_tracing = pytest.mark.skipif(
    sys.version_info >= (3, 12) and sys.implementation.name == "cpython",
    reason="CPython 3.12+ reports bytecodes to such a trace function unreliably",
)


class Halt(Exception):
    """What raise_at's trace function raises, as a signal handler would."""


def raise_at(
    step: int,
    traced: Callable[[FrameType], bool],
    run: Callable[[], object],
    counted: Callable[[FrameType], bool] = lambda frame: True,
) -> Tuple[Optional[BaseException], int]:
    """Run ``run`` with a trace function that raises Halt before the step-th bytecode run in the
    frames ``traced`` accepts (it sees each as it is entered), as a signal handler can on PyPy
    and CPython 3.9 and 3.10 (see opcode_tracing); bytecodes ``counted`` refuses (it sees the
    frame as each runs) are not counted. What was raised out of ``run`` (None if it returned, a
    Halt swallowed on the way included), and how many bytecodes ran in those frames."""
    ran = [0]

    def trace(frame, event, arg):  # type: ignore[no-untyped-def]
        if traced(frame):
            frame.f_trace_opcodes = True
            return local
        return None

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "opcode" and counted(frame):
            ran[0] += 1
            if ran[0] == step:
                raise Halt
        return local

    sys.settrace(trace)
    try:
        run()
    except Halt as exc:
        return exc, ran[0]
    finally:
        sys.settrace(None)
    return None, ran[0]


def signal_main_thread(signum: int = signal.SIGUSR1) -> None:
    """Send signum to the main thread itself. os.kill() would send it to the process, and the
    kernel may hand a process's signal to another thread (one already has a signal pending,
    say): the main thread's msgsnd or msgrcv would then never be interrupted."""
    signal.pthread_kill(threading.main_thread().ident, signum)  # type: ignore[arg-type]


SLEEPING = ("sleep", "select", "poll_schedule")  # time.sleep's wchan: clock_nanosleep, or select (PyPy, < 3.11)


def wait_blocked(
    tid: int, pid: Optional[int] = None, timeout: float = 10.0, where: Union[str, Tuple[str, ...]] = "msg"
) -> None:
    """Wait until a thread sleeps in msgrcv/msgsnd, as /proc/PID/task/TID/wchan shows; with
    ``where=SLEEPING``, in time.sleep (between a polling call's tries, say)."""
    markers = (where,) if isinstance(where, str) else where
    path = f"/proc/{pid or os.getpid()}/task/{tid}/wchan"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                wchan = f.read()
                if any(m in wchan for m in markers):
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise AssertionError(f"thread {tid} never blocked in {where} ({path})")


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll until condition() is true; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what or condition}")
        time.sleep(0.001)


def ipcs_queues() -> Dict[int, Tuple[int, str, int, int, int]]:
    """What ``ipcs -q`` lists: id -> (key, owner, mode, bytes, messages)."""
    out = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].startswith("0x"):
            key, msqid, owner, perms, used, messages = fields
            rows[int(msqid)] = (int(key, 16), owner, int(perms, 8), int(used), int(messages))
    return rows


def ipcs_rows(ids: Set[int]) -> Dict[int, Tuple[int, str, int, int, int]]:
    """``ipcs -q``'s rows for these queue ids only: other programs' queues are not the test's to compare."""
    return {msqid: row for msqid, row in ipcs_queues().items() if msqid in ids}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def session_processes(sid: int) -> List[int]:
    """The pids of the processes in session ``sid`` (a command started with start_new_session=True has sid == pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == sid:
            found.append(int(entry))
    return found
