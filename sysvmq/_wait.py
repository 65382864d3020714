"""How a call waits. Every send and receive that could not finish in its first try ends here.

A call's first crossing into C records what it asks for in its state (a
``Call``) and tries once: sends without waiting, so that a message that can
never fit is found before anything waits on it; blocking receives in the
kernel at once; timed calls without waiting. When that try does not finish
the call, the facade hands the state to ``finish``, which repeats the recorded
operation until it is done, in one of three ways:

- not at all (``block=False`` or IPC_NOWAIT): "full" or "empty" ends the call;
- blocking: in msgsnd(2) or msgrcv(2), the GIL released, for as long as it takes;
- timed: blocking too, with the calling thread's POSIX timer armed for the
  deadline (``timed_wait() == "timer"``, Linux): at the deadline the timer
  signal interrupts the call, which the kernel never restarts, having moved
  nothing. Where that cannot be (another platform, the mechanism turned off,
  the application's own handler on the signal), by non-blocking tries with
  sleeps between, 50 us doubling to 1 ms (``"poll"``); so too, there, a
  blocking send, which must look at max_size every SEND_SLICE seconds.

EINTR follows PEP 475: the interpreter runs the signal handlers as the
crossing returns. If one raises, its exception ends the call, and the facade
says on it what the call had done (``count``, ``received``), which the C side
recorded before it returned. If none raises, the operation is tried again,
with the time left; EINTR at or past the deadline is the timeout.
"""

import errno
import math
import os
import signal
import time
import warnings
from typing import Callable, Optional

from ._calls import Call
from ._ffi import lib

__all__ = ["finish", "deadline_of", "timed_wait", "timer_signal", "set_timer_signal", "interrupt", "ENV"]

POLL_FIRST = 50e-6
POLL_MAX = 1e-3
SLICE = 0.5  # seconds a cancellable wait sleeps in the kernel before it looks whether it is cancelled
SEND_SLICE = 1.0  # seconds a send sleeps in the kernel before it reads max_size again
MAX_TIMER_WAIT = 86400.0  # seconds one arming of the timer covers at most
# The environment variable read at import: a signal (60, SIGRTMAX-4,
# SIGRTMIN+3) for the timer, or "off" to poll.
ENV = "SYSVMQ_TIMER_SIGNAL"

_EINTR = errno.EINTR
_WOULD_WAIT = (errno.EAGAIN, errno.ENOMSG)
_again = lib.sysvmq_again
_again_until = lib.sysvmq_again_until
_monotonic = time.monotonic
_sleep = time.sleep
_SEND = lib.SYSVMQ_SEND

# Real-time signals exist only where the timer can; elsewhere timed calls poll.
_RT = hasattr(signal, "SIGRTMIN") and hasattr(signal, "SIGRTMAX")


class _Timer:
    """The state of the mechanism: which signal, and whether it is in use."""

    __slots__ = ("signal", "ready", "refused")

    def __init__(self) -> None:
        self.signal: Optional[int] = None  # None: turned off
        self.ready = False  # the handler is installed: timed calls use the timer
        self.refused = False  # the signal has the application's handler: poll


_timer = _Timer()


def default_timer_signal() -> Optional[int]:
    """SIGRTMAX-4 (64 - 4 = 60 on Linux): glibc takes the first real-time signals, valgrind the last."""
    return int(signal.SIGRTMAX) - 4 if _RT else None


def _parse(text: str) -> Optional[int]:
    """A signal named in the environment: a number, SIGRTMIN+n, SIGRTMAX-n, or off."""
    text = text.strip().upper()
    if text in ("", "0", "OFF", "NONE", "POLL"):
        return None
    if text.isdigit():
        return int(text)
    for name, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        if text.startswith(name) and text[len(name) :].isdigit() and _RT:
            base = signal.SIGRTMIN if sign > 0 else signal.SIGRTMAX
            return int(base) + sign * int(text[len(name) :])
    if text in ("SIGRTMIN", "SIGRTMAX") and _RT:
        return int(getattr(signal, text))
    raise ValueError(f"{ENV}={text!r}: give a real-time signal (60, SIGRTMAX-4, SIGRTMIN+3) or 'off'")


def _check_signal(signum: object) -> Optional[int]:
    if signum is None:
        return None
    if isinstance(signum, bool) or not isinstance(signum, int):
        raise TypeError(f"signum must be a signal number or None, not {type(signum).__name__}")
    if not _RT:
        raise ValueError("this platform has no real-time signals: timed calls poll")
    low, high = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    if not low <= signum <= high:
        raise ValueError(f"signum must be a real-time signal, {low}..{high} (SIGRTMIN..SIGRTMAX), not {signum}")
    return int(signum)


def set_timer_signal(signum: Optional[int]) -> None:
    """Choose the real-time signal that ends timed waits in the kernel, or None to poll instead.

    The signal gets a handler that does nothing, installed the first time a
    timed call waits; a signal with a handler of the application's is never
    taken (timed calls then poll). A handler installed on a signal used
    before stays: a thread's timer may still be armed with it.

    Args:
        signum: SIGRTMIN..SIGRTMAX, or None. The default is SIGRTMAX-4, or
            what the environment variable SYSVMQ_TIMER_SIGNAL names at import.

    Raises:
        ValueError: not a real-time signal, or the platform has none.
        TypeError: not an int or None.
    """
    chosen = _check_signal(signum)
    _timer.signal, _timer.ready, _timer.refused = chosen, False, False
    if chosen is None:
        lib.sysvmq_timer_use(0)


def timer_signal() -> Optional[int]:
    """The signal timed waits use (or will use once one waits), None if they poll."""
    return _timer.signal if timed_wait() == "timer" else None


def timed_wait() -> str:
    """How timed calls wait: ``"timer"`` (in the kernel, until a POSIX timer's signal) or ``"poll"``."""
    if _timer.ready:
        if lib.sysvmq_timer_intact():
            return "timer"
        _lose_timer()
    if _timer.signal is None or _timer.refused or not _RT:
        return "poll"
    handler = signal.getsignal(_timer.signal)
    return "timer" if handler in (signal.SIG_DFL, None) else "poll"


def _start_timer() -> bool:
    """Install the handler on first use; False if timed calls must poll."""
    if _timer.ready:
        return True
    if _timer.signal is None or _timer.refused:
        return False
    rc = lib.sysvmq_timer_use(_timer.signal)
    if rc == 0:
        _timer.ready = True
    else:
        _timer.refused = True  # another handler, or no timers here: poll
    return _timer.ready


def interrupt(thread_ident: int) -> bool:
    """Wake a thread from msgsnd or msgrcv (EINTR) with the timer signal; False if timed calls poll."""
    if not _start_timer() or _timer.signal is None:
        return False
    if not lib.sysvmq_timer_intact():
        return _lose_timer()
    signal.pthread_kill(thread_ident, _timer.signal)
    return True


def _read_environment() -> None:
    text = os.environ.get(ENV)
    try:
        chosen = default_timer_signal() if text is None else _check_signal(_parse(text))
    except (TypeError, ValueError) as exc:
        warnings.warn(f"sysvmq: {exc}; timed calls will poll", RuntimeWarning, stacklevel=2)
        chosen = None
    _timer.signal = chosen


_read_environment()


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    """The monotonic time by which a call with ``timeout`` seconds must end, or None."""
    return None if timeout is None else _monotonic() + timeout


def finish(
    call: Call,
    err: int,
    nowait: bool,
    deadline: Optional[float],
    before_waiting: Optional[Callable[[], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
) -> int:
    """Repeat the operation ``call`` records, whose last try failed with ``err``, until it ends.

    Args:
        call: the state the first crossing filled.
        err: the errno of that try.
        nowait: never wait: "full" or "empty" ends the call.
        deadline: wait until this monotonic time at most; None waits for ever.
        before_waiting: called each time the queue was full or empty, before
            the call waits (or ends, with ``nowait``), and with the timer again
            every SEND_SLICE seconds of waiting: sends check there that what is
            left could ever fit, and raise if not (max_size may be lowered by
            another process while they wait).
        cancelled: for a call made in a worker thread (sysvmq.asyncio): when it
            says so, the call ends with ECANCELED. The thread is woken from the
            kernel by the timer signal (``interrupt``), and in any case looks
            every SLICE seconds.

    Returns:
        0 once the operation is done (read its results from ``call.c``), else
        the errno that ends the call: EAGAIN or ENOMSG when it may not wait or
        its time is up, anything else as the kernel said.
    """
    c = call.c
    timed_out = errno.EAGAIN if c.op == _SEND else errno.ENOMSG
    delay = POLL_FIRST
    # How long one sleep in the kernel may last before the call looks up: a
    # cancellable call, whether it is cancelled; a send, whether what is left
    # still fits max_size, which another process may lower while it waits.
    look = SLICE if cancelled is not None else SEND_SLICE if before_waiting is not None else None
    timer = (deadline is not None or look is not None) and _start_timer()
    while True:
        if cancelled is not None and cancelled():
            return errno.ECANCELED
        if err in _WOULD_WAIT:
            if before_waiting is not None:
                before_waiting()
            if nowait:
                return err
        elif err != _EINTR:
            return err
        # EINTR: a handler has run and returned (one that raises ends the call); go on. Without
        # the timer, only a call with nothing to look at while it waits sleeps in the kernel: a
        # send, which must read max_size again, polls.
        if deadline is None and look is None:
            if _again(c, 0) >= 0:
                return 0
            err = c.err
            continue
        now = _monotonic()
        left = math.inf if deadline is None else deadline - now
        if left <= 0:
            return timed_out
        if timer:
            # A very long timeout is waited for in days: a C long long of nanoseconds holds 292 years.
            until = now + min(left, MAX_TIMER_WAIT if look is None else look)
            rc = _again_until(c, math.ceil(until * 1e9))
            if rc >= 0:
                return 0
            if rc == -2:
                timer = False  # this thread can have no timer (timer_create failed): poll
                continue
            if rc == -3:
                timer = _lose_timer()  # the application gave the signal a disposition of its own
                continue
            err = c.err
            if err == _EINTR and before_waiting is not None and _monotonic() >= until:
                before_waiting()  # a slice ended: what is left must still fit
            continue
        # Polling. time.sleep retries on EINTR itself and lets a raising handler through.
        _sleep(delay if delay < left else left)
        delay = min(delay * 2, POLL_MAX)
        if _again(c, 1) >= 0:
            return 0
        err = c.err


def _lose_timer() -> bool:
    """The application changed the timer signal's disposition: poll from now on, and say so once."""
    if not _timer.ready:
        return False
    _timer.ready, _timer.refused = False, True
    warnings.warn(
        f"sysvmq: signal {_timer.signal} got a disposition of the application's; timed calls poll from now on "
        f"(choose another with sysvmq.set_timer_signal or {ENV})",
        RuntimeWarning,
        stacklevel=3,
    )
    return False
