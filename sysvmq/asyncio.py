"""sysvmq for asyncio: the same queue handle, with sends and receives to await (as zmq.asyncio is to zmq).

    import sysvmq.asyncio

    q = sysvmq.asyncio.SysVMQ.private()
    await q.send(b"hello", type=2)
    message = await q.receive_message()
    async for message in q:
        ...

``SysVMQ`` here is a subclass of ``sysvmq.SysVMQ``: the same constructors,
attributes and non-waiting methods (``stats``, ``update``, ``destroy``,
``peek``), and ``send``, ``receive``, ``receive_message``, ``receive_into``,
``send_many``, ``receive_many`` and ``receive_many_messages`` as coroutine
functions with the same arguments. Sync and async handles share a queue
freely; ``SysVMQ.from_sync(q)`` converts one.

How it waits. A System V queue has no file descriptor for the event loop to
watch, and no call ever blocks the loop's thread in the kernel:

- Every call first tries without waiting, in the loop's thread: a message that
  is there, or room, costs one non-blocking system call.
- A receive that must wait hands over to its loop's watchers: one thread for
  each (queue, type selector) with receives waiting, asleep in msgrcv(2) with
  a buffer of 0 bytes. The kernel wakes it with E2BIG when a matching message
  arrives, and leaves the message queued; the thread tells the loop through a
  pipe the loop reads, from C, without the GIL, and the first waiting receive
  then takes the message without waiting. A waiting receive so holds nothing:
  cancelled, it has taken nothing. (An empty message fits a 0-byte buffer, so
  the watcher takes it and holds it: it goes to the first waiting receive, or,
  if that was cancelled, to the next receive of that queue and selector on the
  loop, before anything queued; a watcher that retires, or finds its loop
  closed, with one still held sends it back to the queue.)
- A timeout is counted from the call: a wake-up for a message someone else
  takes first leaves only what remains of it.
- A send that must wait for room joins its queue's line on the loop: one
  thread for each queue with sends waiting, blocked in msgsnd(2), runs them
  one at a time in the order they came (a send that finds room at once does
  not wait behind them, as with msgsnd(2) itself). Cancelled or timed out
  before its turn, a send leaves the line having queued nothing; cancelled
  while it runs, its thread is woken and the ``CancelledError`` carries
  ``count``, what it had queued, as the sync calls' exceptions do.
- Threads are woken from the kernel by the timer signal (``sysvmq.timer_signal``).
  Where timed calls poll (``sysvmq.timed_wait == "poll"``), or a watcher's
  thread can have no timer, or the system gives no thread at all, waits poll
  from the loop instead: non-blocking tries, 50 us doubling to 10 ms, between
  them. Each selector with receives waiting has its own thread: a loop that
  waits on thousands of types at once has thousands of threads.
- A loop that is closed with calls still waiting (``loop.close()`` without
  cancelling its tasks) has its sends count as cancelled: their thread ends
  within about LINGER (0.1 s) without queueing what is left, and a watcher
  within its 0.5 s slice, giving back what it held.
"""

import array
import asyncio
import atexit
import contextlib
import errno
import itertools
import os
import sys
import threading
import time
from collections import deque
from types import FrameType
from typing import (
    Any,
    AsyncIterator,
    Callable,
    ClassVar,
    Deque,
    Dict,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from . import _queue, _wait
from ._args import SIZE_T, max_count_arg, pack, send_type_arg, timeout_arg
from ._calls import Call
from ._errors import QueueEmpty, QueueFull, SysVMQError, carry_count, carry_received, selector
from ._ffi import INT_P, IPC_NOWAIT, LONG_P, MSG_EXCEPT, SIZES, WATCH_P, ffi, lib
from ._stats import Message

__all__ = ["SysVMQ"]

LINGER = 0.1  # seconds an idle watcher thread waits to be wanted again before it ends
_LINGER_NS = int(LINGER * 1e9)
_SLICE_NS = int(_wait.SLICE * 1e9)  # a watcher looks whether its loop was closed this often
POLL_FIRST = 50e-6
POLL_MAX = 0.01

_Q = TypeVar("_Q", bound="SysVMQ")
_T = TypeVar("_T")
Buffer = Any
_SyncQ = _queue.SysVMQ
_ZERO = 0  # "is 0": the default type and flags, told apart from others in one comparison


class _Taken(Message):
    """An empty message a watcher (or a poll) took for a receive: the receive returns it."""

    __slots__ = ()


_READY = object()  # a waiting receive's future: "a message is there, take it"
_TIMEOUT = object()  # ...: "your time is up"
_POLL = object()  # ...: "no thread can wait for you: poll"
# Queue id -> empty messages the watchers (of any loop) hold for receives to come. A receive
# looks for one before its own try only where this says so, so the fast path stays one dict lookup.
_HELD: Dict[int, int] = {}
_HELD_LOCK = threading.RLock()  # taken through _held, as every lock here
_receive = lib.sysvmq_receive
_again = lib.sysvmq_again
_again_until = lib.sysvmq_again_until
_watch_ask = lib.sysvmq_watch_ask
_watch_run = lib.sysvmq_watch_run
_watch_collect = lib.sysvmq_watch_collect
_watch_seen = lib.sysvmq_watch_seen
_monotonic = time.monotonic


def _held(lock: Any, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` with ``lock`` (an RLock, or a Condition over one) held, and released however
    it ends, a signal handler's exception included.

    ``with lock:`` is not enough where handlers run between any two bytecodes (PyPy, CPython
    3.9 and 3.10): one that raises after the body, before ``__exit__`` is called, leaves the
    lock held for ever, and every thread that wants it then blocks. Here the release is the
    body's last step, inside the try, and the finally clause releases the lock only if this
    thread still holds it, which an RLock knows: only a second raise within that clause can
    still leave it held, and then this thread's next section on the lock releases it. Run
    inside a section of the same lock (a finalizer the garbage collector ran there), it runs
    ``fn`` under that section's hold. The loop's thread takes every lock here so; the watcher
    and sender threads, where no handler runs, use ``with``.
    """
    if lock._is_owned() and _in_section(lock):
        return fn(*args)
    try:
        lock.acquire()
        result = fn(*args)
        lock.release()
        return result
    finally:
        if lock._is_owned():
            lock.release()


def _in_section(lock: Any) -> bool:
    """Whether a ``_held`` of ``lock`` is running further up this thread's stack; if not, the
    lock this thread holds was left held by a second raise, and ``_held`` releases it."""
    frame: Optional[FrameType] = sys._getframe(2)
    while frame is not None:
        if frame.f_code is _HELD_CODE and frame.f_locals.get("lock") is lock:
            return True
        frame = frame.f_back
    return False


_HELD_CODE = _held.__code__


def _surely(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(*args)``, a callback of the loop that must run to its end: an awaited call waits
    for what it does. If an exception escapes it (a signal handler's, raised between any two
    bytecodes as in ``_held``), it is run again at the loop's next turn, and the exception goes
    on to the loop: ``fn`` must be safe to run again, whatever part of it ran. Every callback
    this module gives a loop runs so."""
    try:
        fn(*args)
    except BaseException:
        with contextlib.suppress(RuntimeError):  # the loop is closed: no one waits any more
            loop.call_soon(_surely, loop, fn, *args)
        raise


# -- the loop's watchers -----------------------------------------------------------


class _Watcher:
    """One thread asleep in msgrcv with a 0-byte buffer, for a loop's receives of one queue and selector.

    The thread runs ``sysvmq_watch_run`` (see _helpers.h) without the GIL: what
    it sees, it records in the watch and tells the loop by writing the watch's
    token to the loop's pipe, then waits in C to be asked again. The loop wakes
    while the thread stays in C, so neither waits on the other for the GIL.

    The loop's thread alone touches ``waiters`` and ``asked``; it shares
    ``thread`` and ``held`` with the watcher thread under ``cond``. An empty
    message the thread takes (it fits 0 bytes) is kept in ``held`` as the loop
    acts on the outcome, before it collects it (so that doing both again, cut
    short, keeps it once), until a receive takes it, or until the thread
    retires, which puts it back on the queue: so nothing is lost when the loop
    is closed before it heard of the message, or before a woken receive ran.
    """

    def __init__(self, service: "_Service", msqid: int, mtype: int, except_: bool, token: int) -> None:
        self.service = service
        self.msqid, self.mtype, self.flags, self.token = msqid, mtype, MSG_EXCEPT if except_ else 0, token
        # Python's memory, not C's: it lasts while anything can reach the watcher, a coroutine
        # finalized in the same garbage collection too (whose ``finally`` calls forget).
        self.call = Call(msqid, 0, 1)
        self.watch = ffi.new(WATCH_P)
        err = lib.sysvmq_watch_init(self.watch, self.call.c, mtype, self.flags, service.wake_w, token)
        if err:
            raise OSError(err, f"sysvmq: an asyncio watcher's lock: {os.strerror(err)}")
        self.out_type, self.out_err, self.out_seq = ffi.new(LONG_P), ffi.new(INT_P), ffi.new(LONG_P)  # collect's
        self.waiters: Deque[asyncio.Future[Any]] = deque()
        self.asked = False  # the thread was asked to watch and has not answered yet
        self.cond = threading.Condition()
        self.thread: Optional[threading.Thread] = None
        # Empty messages taken, oldest first, for the receives to come, by the number of the outcome
        # that took each (sysvmq_watch_seen); None once a receive has it, until that outcome is collected.
        self.held: Dict[int, Optional[_Taken]] = {}

    # in the loop's thread

    def ask(self) -> None:
        """Have the thread watch once more, if receives wait and it is not watching already. If the
        system can give no thread ("can't start new thread"), the waiting receives poll instead."""
        if self.asked or not self.waiters:
            return
        self.asked = True
        try:
            _held(self.cond, self._ask)  # the thread decides under cond whether it retires: it sees this
        except RuntimeError:
            self._wake(lib.SYSVMQ_WATCH_POLL)

    def _ask(self) -> None:
        # Under cond.
        _watch_ask(self.watch)
        try:
            self._start()
        except BaseException:  # no thread: the next receive asks again
            self.asked = False
            lib.sysvmq_watch_forget(self.watch)
            raise

    def forget(self, fut: "asyncio.Future[Any]") -> None:
        """A waiting receive leaves (done, cancelled, timed out): stop watching if it was the last."""
        with contextlib.suppress(ValueError):  # served already
            self.waiters.remove(fut)
        if not self.waiters and self.asked:
            self.asked = False
            lib.sysvmq_watch_forget(self.watch)  # wakes the thread from msgrcv

    def take(self, box: "List[Tuple[_Watcher, int, _Taken]]") -> "Optional[_Taken]":
        """The oldest empty message held for this selector, if any. It is named in ``box`` first:
        if an exception cuts the take short, ``taken(box)`` says whether it was the caller's."""
        return _held(self.cond, self._take, box)

    def _take(self, box: "List[Tuple[_Watcher, int, _Taken]]") -> "Optional[_Taken]":
        # Under cond. Its entry stays, marked taken, until its outcome is collected: so that
        # collect, run again for that outcome, keeps it no more.
        for seq, message in self.held.items():
            if message is not None:
                box.append((self, seq, message))
                self.held[seq] = None
                _count_held(self.msqid, -1)
                return message
        return None

    def _keep(self, seq: int, mtype: int) -> None:
        # Under cond. Once for an outcome, however often collect runs for it.
        if seq not in self.held:
            self.held[seq] = _Taken(b"", mtype)  # behind any held already: they came first
            _count_held(self.msqid, 1)

    def _prune(self, seq: int) -> None:
        # Under cond, once outcome seq is collected: what was taken of it and before is forgotten.
        for done in [k for k, m in self.held.items() if m is None and k <= seq]:
            del self.held[done]

    def _holding(self) -> bool:
        # Under cond.
        return any(m is not None for m in self.held.values())

    def hand_on(self) -> None:
        """A receive left without acting on its wake-up: the next waiting one is woken, if a message is held."""
        if _held(self.cond, self._holding):
            self._wake(lib.SYSVMQ_WATCH_READY)

    def collect(self) -> None:
        """The thread wrote this watcher's token: act on what it saw, then collect it.

        Safe to run again if an exception cuts it short, as ``_surely`` does: each
        step holds if repeated for the same outcome (an empty message is kept once;
        a second wake-up only has a receive try again).
        """
        seq_p = self.out_seq
        kind = _watch_seen(self.watch, self.out_type, self.out_err, seq_p)
        if kind == lib.SYSVMQ_WATCH_NONE:
            return
        seq = seq_p[0]
        if kind == lib.SYSVMQ_WATCH_TAKEN:
            _held(self.cond, self._keep, seq, self.out_type[0])
        elif kind == lib.SYSVMQ_WATCH_LOST:  # the application gave the timer signal a disposition of its own
            _wait._lose_timer()
        self._wake(kind)
        _watch_collect(self.watch, self.out_type, self.out_err)
        # Asked again since the thread saw this (a receive left and another came): it watches on.
        self.asked = bool(lib.sysvmq_watch_busy(self.watch))
        _held(self.cond, self._prune, seq)

    def _wake(self, kind: int) -> None:
        """Tell the waiting receives what the thread saw."""
        if kind in (lib.SYSVMQ_WATCH_READY, lib.SYSVMQ_WATCH_TAKEN):  # the first tries (or takes what is held)
            fut = self._first()
            if fut is not None:
                fut.set_result(_READY)
                self._served(fut)
            return
        # POLL, LOST: no thread can wait for them; ERROR: the queue is gone, or may not be read (their try says)
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(_READY if kind == lib.SYSVMQ_WATCH_ERROR else _POLL)
        self.waiters.clear()

    def heal(self) -> None:
        """After an exception cut ``collect`` short, once it has run again: ask the thread again if the
        loop collected its outcome without hearing it, and wake a receive for a message held."""
        if self.asked and not lib.sysvmq_watch_busy(self.watch):
            self.asked = False
        self.hand_on()
        self.ask()

    def _served(self, fut: "asyncio.Future[Any]") -> None:
        # Out of line once it has its result, not before: one cut short stays in line (heal).
        if self.waiters and self.waiters[0] is fut:
            self.waiters.popleft()

    def _first(self) -> "Optional[asyncio.Future[Any]]":
        """The first waiting receive still waiting, left in line."""
        waiters = self.waiters
        while waiters and waiters[0].done():
            waiters.popleft()
        return waiters[0] if waiters else None

    def _start(self) -> None:
        # Under cond.
        if self.thread is None:
            thread = threading.Thread(target=self._run, name=f"sysvmq watcher {self.msqid}", daemon=True)
            self.service.started()
            try:
                thread.start()  # RuntimeError if the system has no thread to give
            except BaseException:
                self.service.ended()
                raise
            self.thread = thread
            _LIVE.add(self)

    # in the watcher thread

    def _run(self) -> None:
        watch = self.watch
        while True:
            why = _watch_run(watch, _LINGER_NS, _SLICE_NS)
            with self.cond:
                closed = _exiting or self.service.loop.is_closed()
                if not closed and (why == lib.SYSVMQ_WATCH_SLICE or lib.sysvmq_watch_busy(watch)):
                    continue  # asked again, or the loop has yet to collect what it saw
                if closed:  # its receives will never run again: what the thread took goes back
                    lib.sysvmq_watch_forget(watch)
                    if _watch_seen(watch, self.out_type, self.out_err, self.out_seq) == lib.SYSVMQ_WATCH_TAKEN:
                        self._keep(self.out_seq[0], self.out_type[0])  # it holds cond
                    _watch_collect(watch, self.out_type, self.out_err)
                self.thread = None  # retire; the loop starts another if need be
                held = [m for m in self.held.values() if m is not None]
                self.held.clear()
                _count_held(self.msqid, -len(held))
                break
        if held:
            self._give_back(held)
        if not self.service.post(self._retired):
            self.service.closed()
        self.service.ended()
        _LIVE.discard(self)

    def _retired(self) -> None:
        """In the loop's thread, after the thread ended: forget this selector if nothing is left of it."""
        if _held(self.cond, self._idle):
            self.service.drop(self)

    def _idle(self) -> bool:
        # Under cond.
        return self.thread is None and not self.waiters and not self._holding()

    def _give_back(self, messages: "List[_Taken]") -> None:
        """Put empty messages no receive took back on the queue, waiting for room if need be."""
        with contextlib.suppress(SysVMQError):  # the queue is gone, or may not be written: nowhere to put them
            q = _SyncQ.attach(self.msqid)
            for m in messages:
                q.send(b"", m.type)


_LIVE: "Set[_Watcher]" = set()  # watchers whose thread runs
_exiting = False
EXIT_WAIT = 1.0  # seconds the interpreter's exit waits for watchers to give back what they took


@atexit.register
def _at_exit() -> None:
    """Watcher threads are daemons, which die with the interpreter: have them give back the empty
    messages they took or hold (the loops' receives will never run again), then wait for them."""
    global _exiting
    _exiting = True
    live = list(_LIVE)
    for w in live:
        lib.sysvmq_watch_forget(w.watch)  # out of msgrcv; it retires within LINGER
    deadline = _monotonic() + EXIT_WAIT
    for w in live:
        thread = w.thread
        if thread is not None:
            thread.join(max(0.0, deadline - _monotonic()))


def _taken(box: "List[Tuple[_Watcher, int, _Taken]]") -> List[Message]:
    """What a take cut short by an exception had taken: an entry marked taken (or forgotten since)."""
    return [Message(b"", m.type) for w, seq, m in box if w.held.get(seq) is None]


def _count_held(msqid: int, n: int) -> None:
    """Keep ``_HELD`` (a hint the receives read without a lock) in step with the watchers' ``held``."""
    _held(_HELD_LOCK, _count_held_now, msqid, n)


def _count_held_now(msqid: int, n: int) -> None:
    # Under _HELD_LOCK.
    left = _HELD.get(msqid, 0) + n
    if left > 0:
        _HELD[msqid] = left
    else:
        _HELD.pop(msqid, None)


class _Service:
    """One loop's watchers, one per (queue, type selector) with receives waiting, and the pipe they wake it by.

    The pipe is closed once the service is forgotten and no watcher thread is
    left that could write to it.
    """

    _all: ClassVar[Dict[Any, "_Service"]] = {}
    _lock: ClassVar[Any] = threading.RLock()  # taken through _held

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watchers: Dict[Tuple[int, int, bool], _Watcher] = {}
        self.tokens: Dict[int, _Watcher] = {}
        self._tokens = itertools.count(1)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.threads = 0  # watcher threads running, under _lock
        self.forgotten = False  # under _lock
        self.overflows = lib.sysvmq_watch_overflows()
        try:
            loop.add_reader(self.wake_r, self._woken)
        except BaseException:
            os.close(self.wake_r)
            os.close(self.wake_w)
            raise

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> "Optional[_Service]":
        """The loop's service; None if the loop cannot watch a file descriptor (its receives poll)."""
        return _held(cls._lock, cls._of, loop)

    @classmethod
    def _of(cls, loop: asyncio.AbstractEventLoop) -> "Optional[_Service]":
        # Under _lock.
        service = cls._all.get(loop)
        if service is None:
            cls._sweep()
            try:
                service = cls._all[loop] = cls(loop)
            except NotImplementedError:
                return None
        return service

    @classmethod
    def _sweep(cls) -> None:
        """Under _lock: forget the services of loops closed without hearing their watchers retire
        (stopped, a watcher retired and posted to them, then closed), and close their pipes."""
        for loop, service in list(cls._all.items()):
            if loop.is_closed():
                del cls._all[loop]
                service.forgotten = True
                service._close_pipe()

    def watcher(self, msqid: int, mtype: int, except_: bool) -> _Watcher:
        key = (msqid, mtype, except_)
        w = self.watchers.get(key)
        if w is None:
            token = next(self._tokens)
            w = self.watchers[key] = self.tokens[token] = _Watcher(self, msqid, mtype, except_, token)
        return w

    def _woken(self) -> None:
        """In the loop's thread: the pipe says which watchers saw something."""
        try:
            told = os.read(self.wake_r, 1 << 16)  # whole ints: each was written in one piece
            for token in memoryview(told).cast("i").tolist():
                w = self.tokens.get(token)
                if w is not None:
                    w.collect()
            overflows = lib.sysvmq_watch_overflows()
            if overflows != self.overflows:  # a full pipe refused some tokens: look at every watcher
                self.overflows = overflows
                self._heal()
        except (BlockingIOError, InterruptedError):
            return
        except BaseException:  # cut short: what was read may be lost, or collected and not acted on
            self.loop.call_soon(_surely, self.loop, self._heal)
            raise

    def _heal(self) -> None:
        """Collect and act on what every watcher saw, whatever was done of it before."""
        for w in list(self.tokens.values()):
            w.collect()
            w.heal()

    def drop(self, w: _Watcher) -> None:
        key = (w.msqid, w.mtype, bool(w.flags))
        if self.watchers.get(key) is w:
            del self.watchers[key]
        if self.tokens.get(w.token) is w:  # apart: each step holds if run again (_surely)
            del self.tokens[w.token]
            lib.sysvmq_watch_unpipe(w.watch)  # a thread started for it later tells no one
        if not self.watchers:
            self.loop.remove_reader(self.wake_r)
            _held(self._lock, self._forget, True)

    def closed(self) -> None:
        """From a thread that found the loop closed: forget the loop."""
        _held(self._lock, self._forget, False)

    def _forget(self, close: bool) -> None:
        # Under _lock.
        if self._all.get(self.loop) is self:
            del self._all[self.loop]
        self.forgotten = True
        if close:
            self._close_pipe()

    def started(self) -> None:
        _held(self._lock, self._count_thread, 1)

    def ended(self) -> None:
        """A watcher thread is done with the pipe."""
        _held(self._lock, self._count_thread, -1)

    def _count_thread(self, n: int) -> None:
        # Under _lock.
        self.threads += n
        if n < 0:
            self._close_pipe()

    def _close_pipe(self) -> None:
        # Under _lock.
        if self.forgotten and not self.threads and self.wake_w >= 0:
            for w in self.tokens.values():  # a thread started later for one tells no one
                lib.sysvmq_watch_unpipe(w.watch)
            os.close(self.wake_w)
            os.close(self.wake_r)
            self.wake_w = self.wake_r = -1

    def post(self, func: Callable[..., None], *args: Any) -> bool:
        """Run func in the loop's thread (through _surely); False if the loop is closed."""
        try:
            self.loop.call_soon_threadsafe(_surely, self.loop, func, *args)
        except RuntimeError:
            return False
        return True


# -- the handle ----------------------------------------------------------------------


class SysVMQ(_queue.SysVMQ):
    """A handle on a queue whose sends and receives are awaited (see the module's docstring).

    Everything else is ``sysvmq.SysVMQ``'s: constructors, attributes, ``stats``,
    ``update``, ``destroy``, ``peek``; it pickles as a sync handle does.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        # Named in full: a sync handle on the same queue prints as <SysVMQ ...>.
        cls = type(self)
        return (
            f"<{cls.__module__}.{cls.__qualname__} id={self._id} key={self._key:#010x} buffer_size={self._buffer_size}>"
        )

    @classmethod
    def from_sync(cls: Type[_Q], q: _queue.SysVMQ) -> _Q:
        """An async handle on the queue of a sync one (or another async one): the same id, key and buffer size."""
        return _queue._restore(cls, q.id, q.key, q.buffer_size)

    # receiving
    #
    # Each receive first tries without waiting (the sync call's fast path), then
    # waits for a message that matches, and takes it without waiting.

    async def receive(  # type: ignore[override]
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> bytes:
        """Take one message off the queue and return its bytes; as ``sysvmq.SysVMQ.receive``.

        Raises:
            QueueEmpty: nothing matches, with ``block=False`` or once ``timeout`` passes.
            MessageTooLarge, QueueRemoved, QueuePermissionError: as the sync call.

        Cancelled while it waits, it has taken nothing (its ``CancelledError``
        carries ``received == []``).
        """
        # A message that is there costs the sync call and no more: no closure here (its cells
        # would cost every call), the waiting path apart.
        tried = timeout is None and not _HELD
        if tried:
            if block and type is _ZERO and flags is _ZERO and not truncate:  # the common receive: the cheapest try
                data = self._receive_now()
                if data is not None:
                    return data
            else:
                try:
                    return _SyncQ.receive(self, type, flags, block=False, truncate=truncate)
                except QueueEmpty:
                    if not block or flags & IPC_NOWAIT:
                        raise
        return await self._receive_waiting(type, flags, block, timeout, truncate, tried)

    async def _receive_waiting(
        self, type: int, flags: int, block: bool, timeout: Optional[float], truncate: bool, tried: bool
    ) -> bytes:
        got = await self._receiving(
            lambda: _SyncQ.receive(self, type, flags, block=False, truncate=truncate),
            type,
            flags,
            block,
            timeout,
            tried,
        )
        return got.data if isinstance(got, _Taken) else got

    async def receive_message(  # type: ignore[override]
        self,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> Message:
        """As ``receive``, returning ``Message(data, type)``."""
        got = await self._receiving(
            lambda: _SyncQ.receive_message(self, type, flags, block=False, truncate=truncate),
            type,
            flags,
            block,
            timeout,
        )
        return Message(got.data, got.type) if isinstance(got, _Taken) else got

    async def receive_into(  # type: ignore[override]
        self,
        buffer: Buffer,
        type: int = 0,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> Tuple[int, int]:
        """As ``receive``, copying the message into a writable buffer; returns ``(nbytes, type)``."""
        got = await self._receiving(
            lambda: _SyncQ.receive_into(self, buffer, type, flags, block=False, truncate=truncate),
            type,
            flags,
            block,
            timeout,
        )
        return (0, got.type) if isinstance(got, _Taken) else got

    async def receive_many(  # type: ignore[override]
        self,
        max_count: int,
        type: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> List[bytes]:
        """Wait for one message, then take up to ``max_count - 1`` more already queued; as the sync call."""
        tried = timeout is None and not _HELD  # as in receive: messages there cost the sync call, no more
        if tried:
            try:
                return _SyncQ.receive_many(self, max_count, type, block=False, truncate=truncate)
            except QueueEmpty:
                if not block:
                    raise
        return await self._receive_many_waiting(max_count, type, block, timeout, truncate, tried)

    async def _receive_many_waiting(
        self, max_count: int, type: int, block: bool, timeout: Optional[float], truncate: bool, tried: bool
    ) -> List[bytes]:
        got = await self._receiving(
            lambda: _SyncQ.receive_many(self, max_count, type, block=False, truncate=truncate),
            type,
            0,
            block,
            timeout,
            tried,
        )
        if isinstance(got, _Taken):
            return [m.data for m in self._more(got, max_count, type, truncate)]
        return got  # type: ignore[no-any-return]

    async def receive_many_messages(  # type: ignore[override]
        self,
        max_count: int,
        type: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        truncate: bool = False,
    ) -> List[Message]:
        """As ``receive_many``, returning ``Message(data, type)`` for each."""
        got = await self._receiving(
            lambda: _SyncQ.receive_many_messages(self, max_count, type, block=False, truncate=truncate),
            type,
            0,
            block,
            timeout,
        )
        if isinstance(got, _Taken):
            return self._more(got, max_count, type, truncate)
        return got  # type: ignore[no-any-return]

    async def _receiving(
        self,
        attempt: Callable[[], Any],
        mtype: int,
        flags: int,
        block: bool,
        timeout: Optional[float],
        tried: bool = False,
    ) -> Any:
        """Try ``attempt`` (the sync call, without waiting) until it returns, waiting between tries for a message
        that matches; or an empty message a watcher took for this call (``_Taken``). ``tried``: the caller's
        own first try just found nothing, so wait before the next.

        The deadline is set once, as the call begins: a wake-up for a message that
        someone else takes first leaves only what remains of ``timeout`` to wait.
        """
        box: List[Tuple[_Watcher, int, _Taken]] = []  # what a take from the watchers' held names first
        try:
            nowait = not block or (isinstance(flags, int) and bool(flags & IPC_NOWAIT))  # an IntFlag too
            wait = None if timeout is None else timeout_arg(timeout, nowait)
            deadline = None if wait is None else _monotonic() + wait
            while True:
                if _HELD and self._id in _HELD:  # an empty message taken for an earlier receive comes first
                    taken = self._held(mtype, flags, box)
                    if taken is not None:
                        return taken
                if tried:
                    tried = False
                else:
                    try:
                        return attempt()
                    except QueueEmpty:
                        if nowait or wait == 0:
                            raise
                taken = await self._ready(mtype, flags, deadline, wait, box)
                if taken is not None:
                    return taken
        except BaseException as exc:
            if not hasattr(exc, "received"):  # raised here, or in the loop's machinery
                carry_received(exc, _taken(box))  # an empty message a take cut short had taken, or none
            raise

    def _more(self, first: Message, max_count: int, mtype: int, truncate: bool) -> List[Message]:
        """After an empty message a watcher took: the rest of a batch, without waiting.

        As in the sync call, an error after the first message ends the batch,
        which is returned; any other exception carries the whole batch (``received``).
        """
        taken = [Message(first.data, first.type)]
        count = max_count_arg(max_count) - 1
        if not count:
            return taken
        try:
            return taken + _SyncQ.receive_many_messages(self, count, mtype, block=False, truncate=truncate)
        except QueueEmpty:
            return taken
        except SysVMQError as exc:  # too large, removed, ...: the next call meets it again
            return taken + list(getattr(exc, "received", []))
        except BaseException as exc:
            carry_received(exc, taken + list(getattr(exc, "received", [])))
            raise

    def _held(self, mtype: int, flags: int, box: "List[Tuple[_Watcher, int, _Taken]]") -> "Optional[_Taken]":
        """An empty message this loop's watcher for the selector took and no receive has yet."""
        service = _Service._all.get(asyncio.get_running_loop())
        if service is None or not isinstance(flags, int):
            return None
        watcher = service.watchers.get((self._id, mtype, bool(flags & MSG_EXCEPT)))
        return None if watcher is None else watcher.take(box)

    async def _ready(
        self,
        mtype: int,
        flags: int,
        deadline: Optional[float],
        wait: Optional[float],
        box: "List[Tuple[_Watcher, int, _Taken]]",
    ) -> "Optional[_Taken]":
        """Wait until a message that matches is queued (None: try again now), or an empty one was taken for us.

        Raises QueueEmpty at ``deadline`` (``wait`` seconds after the call began).
        """
        loop = asyncio.get_running_loop()
        except_ = bool(flags & MSG_EXCEPT)
        if deadline is not None and _monotonic() >= deadline:
            raise self._timed_out(mtype, except_, wait)
        if not _wait._start_timer():
            return await self._poll(mtype, except_, deadline, wait)
        service = _Service.of(loop)
        if service is None:
            return await self._poll(mtype, except_, deadline, wait)
        watcher = service.watcher(self._id, mtype, except_)
        taken = watcher.take(box)
        if taken is not None:
            return taken
        fut: asyncio.Future[Any] = loop.create_future()
        watcher.waiters.append(fut)
        timer = None
        got: Any = None
        try:
            watcher.ask()  # no thread to give: fut says _POLL
            timer = None if deadline is None else _Expiry(loop, deadline, lambda: _time_up(fut))
            got = await fut
        except BaseException as exc:  # cancelled, or a handler's: it took nothing
            carry_received(exc, [])
            raise
        finally:
            if timer is not None:
                timer.cancel()
            watcher.forget(fut)
            if got is None:  # it leaves without acting on a wake-up it may have had: an empty message
                watcher.hand_on()  # held stays held (it took nothing), and wakes the next waiting one
            watcher.ask()  # the next waiting receive, if any, is served next
        if got is _TIMEOUT:
            raise self._timed_out(mtype, except_, wait)
        if got is _POLL:
            return await self._poll(mtype, except_, deadline, wait)
        return None

    async def _poll(
        self, mtype: int, except_: bool, deadline: Optional[float], wait: Optional[float]
    ) -> "Optional[_Taken]":
        """Where no thread can be woken from the kernel: look, with sleeps between, until a message is there."""
        delay = POLL_FIRST
        call = self._pool.call(0)
        c = call.c
        flags = (MSG_EXCEPT if except_ else 0) | IPC_NOWAIT
        try:
            while True:
                if _receive(c, mtype, flags, ffi.NULL, 0) >= 0:
                    return _Taken(b"", call.mtype[0])  # an empty one, taken
                if c.err != errno.ENOMSG:
                    return None  # one is there (E2BIG), or the kernel says why not: the caller's try says
                left = None if deadline is None else deadline - _monotonic()
                if left is not None and left <= 0:
                    raise self._timed_out(mtype, except_, wait)
                await asyncio.sleep(delay if left is None else min(delay, left))
                delay = min(delay * 2, POLL_MAX)
        finally:
            self._pool.give_back(call)

    def _timed_out(self, mtype: int, except_: bool, wait: Optional[float]) -> QueueEmpty:
        exc = QueueEmpty(
            errno.ENOMSG, f"msgrcv on {self._describe()}: no message{selector(mtype, except_)} within {wait:g} s"
        )
        carry_received(exc, [])
        return exc

    # sending

    async def send(  # type: ignore[override]
        self,
        message: Union[bytes, str, Buffer],
        type: int = 1,
        flags: int = 0,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
    ) -> None:
        """Queue one message; as ``sysvmq.SysVMQ.send``.

        Waiting for room, it runs in a worker thread blocked in msgsnd; cancelled,
        its ``CancelledError`` carries ``count`` (1 if it was queued meanwhile).
        """
        nowait = not block or (isinstance(flags, int) and bool(flags & IPC_NOWAIT))  # an IntFlag too
        wait = None if timeout is None else timeout_arg(timeout, nowait)
        deadline = None if wait is None else _monotonic() + wait
        try:
            return _SyncQ.send(self, message, type, flags, block=False)
        except QueueFull:
            if nowait or wait == 0:
                raise
        blob, lens = pack([message])
        await self._send_waiting(blob, lens, send_type_arg(type), deadline, wait)

    async def send_many(  # type: ignore[override]
        self,
        messages: Union[Sequence[Union[bytes, str, Buffer]], Buffer],
        type: int = 1,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> int:
        """Queue a sequence of messages in order; as ``sysvmq.SysVMQ.send_many`` (``timeout`` bounds the whole call).

        Cancelled while it waits for room, its ``CancelledError`` carries
        ``count``: how many were queued, so that ``messages[count:]`` were not.
        """
        wait = None if timeout is None else timeout_arg(timeout, not block)
        deadline = None if wait is None else _monotonic() + wait
        try:  # the first try checks every argument, lengths a sequence among them, before any syscall
            done = _SyncQ.send_many(self, messages, type, block=False, lengths=lengths)
        except QueueFull:
            if not block or wait == 0:
                raise
            done = 0
        total = len(messages) if lengths is None else len(lengths)
        if done == total or not block:
            return done
        # A sequence need not slice (a deque does not): what is left is read by position.
        if lengths is None:
            blob, lens = pack(list(itertools.islice(messages, done, None)))
        else:
            every = array.array(SIZE_T, lengths)
            with memoryview(messages) as view:  # type: ignore[arg-type]
                blob = view.cast("B")[sum(every[:done]) :].tobytes()
            lens = every[done:]
        try:
            return done + await self._send_waiting(blob, lens, send_type_arg(type), deadline, wait)
        except BaseException as exc:
            carry_count(exc, done + getattr(exc, "count", 0))
            raise

    async def _send_waiting(
        self, blob: bytes, lens: "array.array[int]", mtype: int, deadline: Optional[float], wait: Optional[float]
    ) -> int:
        """Send the texts of blob (lengths lens) in a worker thread, waiting for room until ``deadline``; how
        many it sent, whatever ends it (``count``)."""
        loop = asyncio.get_running_loop()
        if not _wait._start_timer():
            return await self._send_polling(blob, list(lens), mtype, deadline, wait)
        job = _SendJob(self, blob, lens, mtype, deadline, wait, loop)
        try:
            line = _Senders.submit(loop, self._id, job)
        except RuntimeError:  # the system has no thread to give ("can't start new thread"): poll
            return await self._send_polling(blob, list(lens), mtype, deadline, wait)
        expiry = None if deadline is None else _Expiry(loop, deadline, lambda: self._expire(line, job))
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError as exc:
            if line.withdraw(job):  # it had not started: it queued nothing, and never will
                carry_count(exc, 0)
                raise
            job.cancel()
            while not job.future.done():
                try:
                    await asyncio.shield(job.future)
                except asyncio.CancelledError:
                    continue  # cancelled again: still, say what was queued
                except BaseException:
                    break
            carry_count(exc, job.count)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()

    def _expire(self, line: "_Line", job: "_SendJob") -> None:
        """A send's deadline passed while it waited its turn in the line: it queued nothing."""
        if not job.future.done() and (line.withdraw(job) or job.withdrawn):
            exc = self._send_error(errno.EAGAIN, job.lens[0], job.wait)
            carry_count(exc, 0)
            job.future.set_exception(exc)

    async def _send_polling(
        self, blob: bytes, lens: List[int], mtype: int, deadline: Optional[float], wait: Optional[float]
    ) -> int:
        """Where no thread can be woken from the kernel: try without waiting, with sleeps between."""
        sent = offset = 0
        delay = POLL_FIRST
        try:
            while sent < len(lens):
                try:
                    _SyncQ.send(self, blob[offset : offset + lens[sent]], mtype, block=False)
                except QueueFull:
                    left = None if deadline is None else deadline - _monotonic()
                    if left is not None and left <= 0:
                        raise QueueFull(
                            errno.EAGAIN, f"msgsnd on {self._describe()}: no room for a message within {wait:g} s"
                        ) from None
                    await asyncio.sleep(delay if left is None else min(delay, left))
                    delay = min(delay * 2, POLL_MAX)
                    continue
                offset += lens[sent]
                sent += 1
                delay = POLL_FIRST
            return sent
        except BaseException as exc:
            carry_count(exc, sent)
            raise

    # streams

    def __aiter__(self) -> AsyncIterator[Message]:
        """``async for message in q``: every message, of any type, until the task is cancelled."""
        return self._stream(0)

    @overload
    def messages(self, type: int = 0) -> AsyncIterator[Message]: ...

    @overload
    def messages(self, type: int = 0, *, batch: int) -> AsyncIterator[List[Message]]: ...

    def messages(
        self, type: int = 0, *, batch: Optional[int] = None
    ) -> Union[AsyncIterator[Message], AsyncIterator[List[Message]]]:
        """A stream of the messages ``type`` selects (as ``receive``): one ``Message`` at a time, or
        with ``batch=N`` lists of 1..N taken in one call (``receive_many_messages``)."""
        if batch is None:
            return self._stream(type)
        return self._batch_stream(type, max_count_arg(batch))

    async def _stream(self, mtype: int) -> AsyncIterator[Message]:
        while True:
            yield await self.receive_message(mtype)

    async def _batch_stream(self, mtype: int, count: int) -> AsyncIterator[List[Message]]:
        while True:
            yield await self.receive_many_messages(count, mtype)


class _SendJob:
    """A send waiting for room, run by its queue's line; ``future`` gets how many it queued, or its error."""

    def __init__(
        self,
        q: SysVMQ,
        blob: bytes,
        lens: "array.array[int]",
        mtype: int,
        deadline: Optional[float],
        wait: Optional[float],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.q, self.blob, self.lens, self.mtype = q, blob, lens, mtype
        self.deadline, self.wait = deadline, wait
        self.loop = loop
        self.future: asyncio.Future[int] = loop.create_future()
        self.cancelled = threading.Event()
        self.withdrawn = False  # taken out of its line before its turn (under the line's cond)
        self.count = 0
        self.ident: Optional[int] = None  # the thread running it, once one does

    def cancel(self) -> None:
        """In the loop's thread, once the job runs: wake its thread, which ends it."""
        self.cancelled.set()
        ident = self.ident
        if ident is not None:
            _wait.interrupt(ident)

    def stopped(self) -> bool:
        # A closed loop will never hear the outcome: what is left is not queued.
        return self.withdrawn or self.cancelled.is_set() or self.loop.is_closed()

    def run(self) -> None:
        """In the line's thread: send, waiting for room; then hand the outcome to the loop."""
        if self.stopped():  # before it started: nothing queued
            self._post((0, None))
            return
        self._run()

    def _post(self, outcome: Tuple[Optional[int], Optional[BaseException]]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: no one waits for this
            self.loop.call_soon_threadsafe(_surely, self.loop, self._settle, outcome)

    def _run(self) -> None:
        q = self.q
        call = q._pool.call(max(self.lens))
        c = call.c
        sizes = self.lens
        keep = ffi.from_buffer(self.blob)  # stays valid across crossings (PyPy moves bytes otherwise)
        outcome: Tuple[Optional[int], Optional[BaseException]]
        try:
            lens = ffi.from_buffer(SIZES, sizes)
            done = lib.sysvmq_send_many(c, self.mtype, keep, lens, len(sizes), 0, IPC_NOWAIT)  # texts end to end
            err = 0
            if done != len(self.lens):
                err = c.err
                while True:
                    # LINGER at a time at most: no one can wake the thread when its loop is closed, so it
                    # looks that often, and ends without queueing the rest.
                    until = _monotonic() + LINGER
                    if self.deadline is not None and self.deadline <= until:
                        until = self.deadline
                    err = _wait.finish(call, err, False, until, lambda: q._check_rest(call, sizes), self.stopped)
                    if err != errno.EAGAIN or until == self.deadline:
                        break
            self.count = int(c.done)
            if err and err != errno.ECANCELED:
                outcome = (None, q._send_error(err, self.lens[self.count], self.wait))
            else:
                outcome = (self.count, None)
        except BaseException as exc:  # MessageTooLarge from the check, ...
            self.count = int(c.done)
            outcome = (None, exc)
        finally:
            q._pool.give_back(call)
        self._post(outcome)

    def _settle(self, outcome: Tuple[Optional[int], Optional[BaseException]]) -> None:
        if self.future.done():
            return
        count, exc = outcome
        if exc is not None:
            carry_count(exc, self.count)
            self.future.set_exception(exc)
        else:
            self.future.set_result(count or 0)


class _Line:
    """A loop's sends waiting for room on one queue: one thread runs them, one at a time, in the order
    they came, and lingers LINGER seconds for the next before it ends."""

    def __init__(self, senders: "_Senders", msqid: int) -> None:
        self.senders, self.msqid = senders, msqid
        self.cond = threading.Condition()
        self.jobs: Deque[_SendJob] = deque()  # under cond: the jobs waiting their turn
        self.thread: Optional[threading.Thread] = None
        self.ended = False  # the thread ended: the next job starts another line

    # in the loop's thread

    def submit(self, job: _SendJob) -> bool:
        """Queue the job behind the others; False if the line has ended."""
        return _held(self.cond, self._submit, job)

    def _submit(self, job: _SendJob) -> bool:
        # Under cond.
        if self.ended:
            return False
        self.jobs.append(job)
        if self.thread is None:
            thread = threading.Thread(target=self._work, name=f"sysvmq send {self.msqid}", daemon=True)
            try:
                thread.start()  # RuntimeError if the system has no thread to give
            except BaseException:
                self.jobs.remove(job)
                raise
            self.thread = thread
        else:
            self.cond.notify()
        return True

    def withdraw(self, job: _SendJob) -> bool:
        """Take the job out of the line if it has not started: True if so (it queued nothing, and never will)."""
        return _held(self.cond, self._withdraw, job)

    def _withdraw(self, job: _SendJob) -> bool:
        # Under cond. withdrawn first: a job cut short here, left in the line, queues nothing either.
        if job not in self.jobs:
            return False
        job.withdrawn = True
        self.jobs.remove(job)
        return True

    # in the line's thread

    def _work(self) -> None:
        while True:
            with self.cond:
                if not self.jobs:
                    self.cond.wait(LINGER)
                if not self.jobs:
                    self.ended = True
                    self.thread = None
                    break
                job = self.jobs.popleft()
                job.ident = threading.get_ident()  # before withdraw can fail: cancel then wakes this thread
            job.run()
        self.senders.drop(self)


class _Senders:
    """A loop's lines of sends waiting for room, one a queue."""

    _all: ClassVar[Dict[Any, "_Senders"]] = {}
    _lock: ClassVar[Any] = threading.RLock()  # for _all and every lines; taken through _held

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lines: Dict[int, _Line] = {}

    @classmethod
    def submit(cls, loop: asyncio.AbstractEventLoop, msqid: int, job: _SendJob) -> _Line:
        """Queue the job in the line of its queue on its loop; the line."""
        while True:
            senders, line = _held(cls._lock, cls._line, loop, msqid)
            if line.submit(job):
                return line
            senders.drop(line)  # it ended as the job came: a new one

    @classmethod
    def _line(cls, loop: asyncio.AbstractEventLoop, msqid: int) -> "Tuple[_Senders, _Line]":
        # Under _lock.
        senders = cls._all.get(loop)
        if senders is None:
            senders = cls._all[loop] = cls(loop)
        line = senders.lines.get(msqid)
        if line is None:
            line = senders.lines[msqid] = _Line(senders, msqid)
        return senders, line

    def drop(self, line: _Line) -> None:
        _held(self._lock, self._drop, line)

    def _drop(self, line: _Line) -> None:
        # Under _lock.
        if self.lines.get(line.msqid) is line:
            del self.lines[line.msqid]
        if not self.lines and self._all.get(self.loop) is self:
            del self._all[self.loop]


def _time_up(fut: "asyncio.Future[Any]") -> None:
    if not fut.done():
        fut.set_result(_TIMEOUT)


class _Expiry:
    """Calls ``expire`` at the deadline, never before: a loop's timers may fire early
    (uvloop counts in whole milliseconds from a clock read at the top of its iteration)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float, expire: Callable[[], None]) -> None:
        self.loop, self.deadline, self.expire = loop, deadline, expire
        self.cancelled = False
        self.handle = loop.call_later(max(0.0, deadline - _monotonic()), _surely, loop, self._fire)

    def _fire(self) -> None:
        # Run again, after an exception, it may have set two timers: expire holds if called twice.
        if self.cancelled:
            return
        left = self.deadline - _monotonic()
        if left > 0:
            self.handle = self.loop.call_later(left, _surely, self.loop, self._fire)
        else:
            self.expire()

    def cancel(self) -> None:
        self.cancelled = True
        self.handle.cancel()
