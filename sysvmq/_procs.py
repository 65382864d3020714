"""Signals and worker processes for the command line: whatever ends a command, it cleans up first.

``Signals`` turns SIGINT, SIGTERM, SIGHUP and SIGPIPE into ``Stopped`` once, so that a
command's ``finally`` runs; a second signal while it cleans up is remembered,
not raised. ``Workers`` starts the processes of ``bench`` and ``demo``: each
dies with its parent (``PR_SET_PDEATHSIG``, or a thread watching the parent
where prctl(2) is missing), removes the queue itself if the parent died
without doing so, and reports a failure to the parent in one line instead of a
traceback; the parent learns of a worker's death at once (SIGCHLD interrupts
whatever call it is waiting in) and raises ``WorkerFailed``.
"""

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from . import QueueRemoved, SysVMQ, SysVMQError

# SIGPIPE too: a write to a pipe whose reader has gone raises it (and a kill can send it).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Stopped(BaseException):
    """SIGINT, SIGTERM, SIGHUP or SIGPIPE asked the command to stop: it cleans up and exits 128 + signum.

    A BaseException, as KeyboardInterrupt is, so that ``except Exception`` does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class WorkerFailed(Exception):
    """A worker process ended before its work was done: killed, or failed with an error.

    ``signum`` is the stop signal (SIGTERM, SIGHUP) that killed it, if one did.
    """

    def __init__(self, message: str, signum: Optional[int] = None) -> None:
        super().__init__(message)
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Signals:
    """While armed, the first of the STOP_SIGNALS raises ``Stopped``; later ones are only remembered.

    Use as a context manager around a command. ``disarm()`` at the start of its
    cleanup (the handler disarms itself before it raises, so cleanup that
    follows a signal is never interrupted); ``holding()`` defers a signal while
    the command holds something it must not drop (a message it took), and
    raises it as soon as the hold ends.
    """

    def __init__(self) -> None:
        self.armed = False
        self.pending: Optional[int] = None
        self._holding = False
        self._saved: List[Tuple[int, Any]] = []

    def __enter__(self) -> "Signals":
        for signum in STOP_SIGNALS:
            self._saved.append((signum, signal.signal(signum, self._on_signal)))
        self.armed = True
        return self

    def __exit__(self, exc_type: object, exc: Optional[BaseException], tb: object) -> None:
        self.armed = False
        for signum, handler in reversed(self._saved):
            signal.signal(signum, handler)
        self._saved.clear()
        if isinstance(exc, WorkerFailed) and exc.signum is not None and exc.signum == self.pending:
            # Ctrl-C, timeout(1) and a closing terminal signal the whole process group: the
            # worker died of the signal that came to the parent too (an interpreter may run
            # the SIGCHLD handler first). The command was stopped; the worker did not fail.
            raise Stopped(exc.signum) from None

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if not self.armed or self._holding:
            self.pending = self.pending or signum
            return
        self.armed = False
        raise Stopped(signum)

    def raise_failure(self, exc: BaseException, frame: Optional[FrameType]) -> None:
        """Raise ``exc`` from another handler (interrupting ``frame``), once: disarmed after, as for a signal.

        A stop signal's handler that has begun wins: an interpreter may run this
        handler nested at the first line of that one (PyPy does), before it disarmed.
        """
        if not self.armed or self._holding:
            return
        while frame is not None:
            if frame.f_code is _ON_SIGNAL:
                return
            frame = frame.f_back
        self.armed = False
        raise exc

    def disarm(self) -> None:
        self.armed = False

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Defer the stop signals while the body runs; raise the one that came, after it."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self.pending is not None and self.armed:
            self.armed = False
            raise Stopped(self.pending)


_ON_SIGNAL = Signals._on_signal.__code__


@contextlib.contextmanager
def _started_quietly() -> Iterator[None]:
    """Start a child process that cannot be hit by a signal before it has set its handlers.

    The stop signals are blocked around the start (a fork inherits the mask),
    and SIGINT is ignored (an exec'd interpreter, as under the spawn method,
    starts with the mask cleared but keeps an ignored SIGINT, and so never
    raises KeyboardInterrupt while it boots). A SIGINT that was pending before
    is raised again once the parent's handler is back.
    """
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    interrupted = signal.SIGINT in signal.sigpending()
    old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a pending SIGINT: noted above
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        if interrupted:
            os.kill(os.getpid(), signal.SIGINT)


def _prctl_pdeathsig(signum: int) -> bool:
    """Ask the kernel to send ``signum`` when the parent dies (Linux); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0  # type: ignore[no-any-return]


def _orphaned(q: SysVMQ) -> None:
    """The parent died without cleaning up: remove the queue (the last one out does), and go."""
    with contextlib.suppress(SysVMQError):
        q.destroy()
    os._exit(1)


def _worker_main(parent: int, q: SysVMQ, report: Connection, target: Callable[..., Any], args: Sequence[Any]) -> None:
    """What every worker runs: die with the parent, report the outcome, never print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, whose cleanup ends us
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a worker writes to no pipe but its report's
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the parent's handler, inherited by a fork

    def on_term(signum: int, frame: Optional[FrameType]) -> None:
        if os.getppid() != parent:
            _orphaned(q)
        signal.signal(signum, signal.SIG_DFL)  # killed by someone else: die of it, as without a handler
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    if not _prctl_pdeathsig(signal.SIGTERM):

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.2)
            _orphaned(q)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # it died before prctl took effect
        _orphaned(q)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        result = target(q, *args)
    except BaseException as exc:  # reported to the parent in one line, not as a traceback
        with contextlib.suppress(OSError):
            report.send(("failed", _one_line(exc)))
        sys.exit(1)
    with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        report.send(("done", result))


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


class Worker:
    """One worker process, its name for messages, and the parent's end of its report pipe."""

    def __init__(self, name: str, process: Any, conn: Connection) -> None:
        self.name = name
        self.process = process
        self.conn = conn
        self.outcome: Optional[Tuple[str, Any]] = None
        self._reading = False  # the parent is inside conn.recv(): a SIGCHLD handler must not read too

    def _read(self) -> None:
        """Read the outcome, unless it is read or being read: a handler can run inside another read."""
        if self.outcome is not None or self._reading:
            return
        self._reading = True
        try:
            self.outcome = self.conn.recv()
        except (EOFError, OSError):
            self.outcome = ("died", None)
        finally:
            self._reading = False

    def receive(self) -> Any:
        """The worker's result, once it sent it; WorkerFailed if it failed or died first."""
        self._read()
        assert self.outcome is not None
        if self.outcome[0] != "done":
            self.process.join(1.0)
            raise WorkerFailed(self.failure() or f"the {self.name} (pid {self.process.pid}) failed")
        return self.outcome[1]

    def wait(self, timeout: float) -> bool:
        """Whether the worker's outcome is here (or it died), waiting at most ``timeout`` seconds."""
        return self.outcome is not None or self.conn.poll(timeout)

    def failure(self) -> Optional[str]:
        """Why the worker ended before its work was done, if it did; None while it runs and once it is done."""
        code = self.process.exitcode  # polls without waiting
        if code is None:
            return None
        if self.outcome is None and not self._reading and self.conn.poll():
            self._read()
        who = f"the {self.name} (pid {self.process.pid})"
        if self.outcome is None and self._reading:
            return None  # its outcome is being read: the reader reports what it says
        if self.outcome is not None and self.outcome[0] == "done":
            return None
        if self.outcome is not None and self.outcome[0] == "failed":
            return f"{who} failed: {self.outcome[1]}"
        if code < 0:
            return f"{who} was killed by {signal_name(-code)}"
        return f"{who} exited with status {code} before its work was done"


def _ignore(signum: int, frame: Optional[FrameType]) -> None:
    pass


class Workers:
    """The parent's side: starts workers on one queue, watches them, and ends them.

    While the context is entered, SIGCHLD makes ``signals`` raise WorkerFailed
    in the parent (whatever call it waits in) when a worker ends before its
    work is done. On exit every worker still running is killed and reaped.
    """

    def __init__(self, ctx: Any, q: SysVMQ, signals: Signals) -> None:
        self._ctx = ctx
        self._q = q
        self._signals = signals
        self.running: List[Worker] = []
        self._saved: Any = None

    def __enter__(self) -> "Workers":
        self._saved = signal.signal(signal.SIGCHLD, self._on_child)
        return self

    def __exit__(self, exc_type: object, exc: Optional[BaseException], tb: object) -> None:
        try:
            if exc is not None:
                self._signals.disarm()  # failing: what follows is cleanup
        finally:
            # A SIGCHLD the C handler took just as the disposition goes back to SIG_DFL would find
            # no Python handler to run ("Signal 17 ignored due to race condition" on stderr): the
            # workers end under a handler that does nothing, and signal.signal() runs any pending
            # one before it puts the saved disposition back.
            try:
                signal.signal(signal.SIGCHLD, _ignore)
            finally:
                try:
                    self.stop()
                finally:
                    signal.signal(signal.SIGCHLD, self._saved)

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> Worker:
        """Start ``target(q, *args)`` in a new process; ``Worker.receive`` gives what it returns."""
        mine, theirs = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main, args=(os.getpid(), self._q, theirs, target, args), name=name, daemon=True
        )
        worker = Worker(name, process, mine)
        with _started_quietly():
            process.start()
            self.running.append(worker)
        theirs.close()  # the worker's death then closes the pipe: recv() raises EOFError
        return worker

    def _on_child(self, signum: int, frame: Optional[FrameType]) -> None:
        for worker in self.running:
            failure = worker.failure()
            if failure is not None:
                code = worker.process.exitcode or 0
                self._signals.raise_failure(WorkerFailed(failure, -code if -code in STOP_SIGNALS else None), frame)

    def stop(self) -> None:
        """Kill the workers still running and reap them all."""
        for worker in self.running:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in self.running:
            worker.process.join()
            worker.conn.close()
        self.running.clear()


@contextlib.contextmanager
def private_queue(signals: Signals, note: Optional[Callable[[str], None]] = None) -> Iterator[SysVMQ]:
    """A new private queue for the body, removed whatever ends it (``note`` hears of both)."""
    made: List[SysVMQ] = []

    def remove() -> None:
        for q in made:
            try:
                q.destroy()
            except QueueRemoved:
                continue  # someone else removed it: not ours to announce
            if note is not None:
                note(f"removed queue {q.id}")

    with cleanup(signals, remove):
        with signals.holding():  # a signal now would leave the queue made and not yet noted
            made.append(SysVMQ.private())
        if note is not None:
            note(f"private queue {made[0].id}")
        yield made[0]


@contextlib.contextmanager
def cleanup(signals: Signals, *steps: Callable[[], None]) -> Iterator[None]:
    """Run ``steps`` after the body whatever ends it, without letting their errors hide the body's.

    If the body failed, a step's error is noted on the body's exception
    (``cleanup_error``, which the command prints after it); if the body
    succeeded, the first step's error is raised once every step has run.
    """
    failure: Optional[BaseException] = None
    try:
        try:
            yield
        except BaseException as exc:
            failure = exc
            raise
    finally:
        try:
            signals.disarm()  # a signal that raises here still leaves the steps below to run
        finally:
            first: Optional[BaseException] = None
            for step in steps:
                try:
                    step()
                except Exception as exc:  # kept, reported below
                    first = first or exc
            if first is not None:
                if failure is None:
                    raise first
                with contextlib.suppress(AttributeError):
                    failure.cleanup_error = first  # type: ignore[attr-defined]
