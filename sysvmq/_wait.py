"""How a call waits. Every send and receive that could not finish in its first try ends here.

A call's first crossing into C records what it asks for in its state (a
``Call``) and tries once: sends without waiting, so that a message that can
never fit is found before anything waits on it; blocking receives in the
kernel at once. When that try does not finish the call, the facade hands the
state to ``finish``, which repeats the recorded operation until it is done,
in one of three ways:

- not at all (``block=False`` or IPC_NOWAIT): "full" or "empty" ends the call;
- blocking: in msgsnd(2) or msgrcv(2), the GIL released, for as long as it takes;
- timed: until a deadline on the monotonic clock, by non-blocking tries with
  sleeps between (50 us doubling to 1 ms).

EINTR follows PEP 475: the interpreter runs the signal handlers as the
crossing returns. If one raises, its exception ends the call, and the facade
says on it what the call had done (``count``, ``received``), which the C side
recorded before it returned. If none raises, the operation is tried again,
with the time left.
"""

import errno
import time
from typing import Callable, Optional

from ._calls import Call
from ._ffi import lib

__all__ = ["finish", "deadline_of"]

POLL_FIRST = 50e-6
POLL_MAX = 1e-3

_EINTR = errno.EINTR
_WOULD_WAIT = (errno.EAGAIN, errno.ENOMSG)
_again = lib.sysvmq_again
_monotonic = time.monotonic
_sleep = time.sleep


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    """The monotonic time by which a call with ``timeout`` seconds must end, or None."""
    return None if timeout is None else _monotonic() + timeout


def finish(
    call: Call,
    err: int,
    nowait: bool,
    deadline: Optional[float],
    before_waiting: Optional[Callable[[], None]] = None,
) -> int:
    """Repeat the operation ``call`` records, whose last try failed with ``err``, until it ends.

    Args:
        call: the state the first crossing filled.
        err: the errno of that try.
        nowait: never wait: "full" or "empty" ends the call.
        deadline: wait until this monotonic time at most; None waits for ever.
        before_waiting: called each time the queue was full or empty, before
            the call waits (or ends, with ``nowait``): sends check there that
            what is left could ever fit, and raise if not.

    Returns:
        0 once the operation is done (read its results from ``call.c``), else
        the errno that ends the call: EAGAIN or ENOMSG when it may not wait or
        its time is up, anything else as the kernel said.
    """
    c = call.c
    delay = POLL_FIRST
    while True:
        if err in _WOULD_WAIT:
            if before_waiting is not None:
                before_waiting()
            if nowait:
                return err
            if deadline is not None:
                left = deadline - _monotonic()
                if left <= 0:
                    return err
                # time.sleep retries on EINTR itself and lets a raising handler through.
                _sleep(delay if delay < left else left)
                delay = min(delay * 2, POLL_MAX)
                if _again(c, 1) >= 0:
                    return 0
                err = c.err
                continue
        elif err != _EINTR:
            return err
        elif deadline is not None and deadline <= _monotonic():
            return errno.EAGAIN if c.op == lib.SYSVMQ_SEND else errno.ENOMSG
        # Block in the kernel (again, after EINTR: the handlers have run).
        if _again(c, 0 if deadline is None else 1) >= 0:
            return 0
        err = c.err
