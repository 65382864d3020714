"""Timed calls: they wait in the kernel until a per-thread POSIX timer's signal, never end before their
deadline, clean up their timers, and leave an application's own handler alone."""

import contextlib
import errno
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Callable, Dict, List

import pytest
from support import run_python, wait_blocked, wait_for

import sysvmq
from sysvmq import SysVMQ

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kernel timer is Linux's; elsewhere calls poll")


def _timers() -> int:
    """POSIX timers this process has, as /proc/self/timers lists them."""
    with open("/proc/self/timers") as f:
        return sum(line.startswith("ID:") for line in f)


def _in_thread(target: Callable[[], object]) -> Dict[str, object]:
    out: Dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    out["thread"] = t
    return out


def test_timed_calls_use_the_kernel_timer_by_default() -> None:
    assert sysvmq.timed_wait == "timer"
    assert sysvmq.timer_signal == signal.SIGRTMAX - 4


def _into(q: SysVMQ) -> bytes:
    buf = bytearray(64)
    n, _ = q.receive_into(buf, timeout=30)
    return bytes(buf[:n])


TIMED_RECEIVES: Dict[str, Callable[[SysVMQ], bytes]] = {
    "receive": lambda q: q.receive(timeout=30),
    "receive(float, flags)": lambda q: q.receive(0, sysvmq.MSG_NOERROR, timeout=30.0),
    "receive_message": lambda q: q.receive_message(3, timeout=30).data,
    "receive_into": _into,
    "receive_many": lambda q: b"".join(q.receive_many(10, timeout=30)),
}


@pytest.mark.parametrize("name", list(TIMED_RECEIVES))
def test_a_timed_receive_waits_in_msgrcv_and_takes_what_arrives(queue: SysVMQ, name: str) -> None:
    waiter = _in_thread(lambda: TIMED_RECEIVES[name](queue))
    wait_blocked(waiter["thread"].native_id)  # type: ignore[attr-defined]  # in the kernel, not sleeping between tries
    queue.send(b"arrived", 3)
    waiter["thread"].join(10)  # type: ignore[attr-defined]
    assert waiter.get("result") == b"arrived", waiter.get("error")


@pytest.mark.parametrize("many", [False, True])
def test_a_timed_send_waits_in_msgsnd_for_room(queue: SysVMQ, many: bool) -> None:
    queue.update(max_size=1000)
    queue.send(b"f" * 1000)
    sender = _in_thread(lambda: queue.send_many([b"a", b"b"], timeout=30) if many else queue.send(b"a", timeout=30))
    wait_blocked(sender["thread"].native_id)  # type: ignore[attr-defined]
    assert queue.receive() == b"f" * 1000
    sender["thread"].join(10)  # type: ignore[attr-defined]
    assert "error" not in sender
    assert queue.receive_many(5, block=False) == ([b"a", b"b"] if many else [b"a"])


CALLS: Dict[str, Callable[[SysVMQ, float], object]] = {
    "receive": lambda q, t: q.receive(timeout=t),
    "receive_message": lambda q, t: q.receive_message(timeout=t),
    "receive_into": lambda q, t: q.receive_into(bytearray(8), timeout=t),
    "receive_many": lambda q, t: q.receive_many(4, timeout=t),
    "send": lambda q, t: q.send(b"x" * 100, timeout=t),
    "send_many": lambda q, t: q.send_many([b"x" * 60, b"y" * 60], timeout=t),
}


@pytest.mark.parametrize("timeout", [0.001, 0.02])
@pytest.mark.parametrize("name", list(CALLS))
def test_a_timeout_never_ends_before_its_deadline(queue: SysVMQ, name: str, timeout: float) -> None:
    queue.update(max_size=100)
    if name.startswith("send"):
        queue.send(b"f" * 100)  # full
    expected = sysvmq.QueueFull if name.startswith("send") else sysvmq.QueueEmpty
    for _ in range(5):
        began = time.monotonic()
        with pytest.raises(expected, match=f"within {timeout:g} s"):
            CALLS[name](queue, timeout)
        assert time.monotonic() - began >= timeout


def test_a_deadline_passed_before_msgrcv_sleeps_still_ends_the_call(queue: SysVMQ) -> None:
    # A thread descheduled past its deadline between arming the timer and msgrcv gets the
    # signal in user space, where it interrupts nothing: the timer fires again after the
    # deadline until the call ends. A deadline already past when armed is that case, every time.
    from sysvmq._ffi import lib

    with pytest.raises(sysvmq.QueueEmpty):
        queue.receive(timeout=0.001)  # the timer's handler is installed
    call = queue._pool.call()
    try:
        assert lib.sysvmq_try_rx(call.c) == -1  # a receive, recorded; nothing queued
        for _ in range(20):
            assert lib.sysvmq_again_until(call.c, time.monotonic_ns() - 1_000_000) == -1
            assert call.c.err == errno.EINTR
    finally:
        queue._pool.give_back(call)
    queue.send(b"after")
    assert queue.receive(block=False) == b"after"


def test_timers_of_threads_that_exit_are_deleted(queue: SysVMQ) -> None:
    before = _timers()
    errors: List[BaseException] = []

    def many_timeouts() -> None:
        for _ in range(100):
            try:
                queue.receive(7, timeout=0.0005)
            except sysvmq.QueueEmpty:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=many_timeouts) for _ in range(32)]
    for t in threads:
        t.start()
    wait_for(lambda: _timers() > before, what="the threads made timers")
    for t in threads:
        t.join(60)
    assert not errors
    # Each thread's timer goes with it: its pthread key's destructor runs as the thread ends.
    wait_for(lambda: _timers() == before, what=f"timers back to {before} (now {_timers()})")


def test_a_thread_that_blocks_the_signal_still_times_out(queue: SysVMQ) -> None:
    def masked() -> float:
        signal.pthread_sigmask(signal.SIG_BLOCK, {sysvmq.timer_signal})
        began = time.monotonic()
        with contextlib.suppress(sysvmq.QueueEmpty):
            queue.receive(timeout=0.05)
        assert sysvmq.timer_signal in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # blocked again after
        return time.monotonic() - began

    waiter = _in_thread(masked)
    waiter["thread"].join(10)  # type: ignore[attr-defined]
    assert "error" not in waiter, waiter.get("error")
    assert 0.05 <= waiter["result"] < 5  # type: ignore[operator]


FORKED = """
import json, os, sys, time
import sysvmq

q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
try:
    q.receive(5, timeout=0.01)  # this process makes its timer
except sysvmq.QueueEmpty:
    pass
pid = os.fork()
if pid == 0:
    out = {}
    began = time.monotonic()
    try:
        q.receive(5, timeout=0.05)
    except sysvmq.QueueEmpty:
        out["waited"] = time.monotonic() - began
    out["timers"] = sum(l.startswith("ID:") for l in open("/proc/self/timers"))
    out["strategy"] = sysvmq.timed_wait
    q.send(json.dumps(out), 9)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(q.receive(9, timeout=10).decode())
"""


def test_a_forked_child_makes_its_own_timer(queue: SysVMQ) -> None:
    result = json.loads(run_python(FORKED, str(queue.id)).stdout)
    assert result["strategy"] == "timer"
    assert result["waited"] >= 0.05
    assert result["timers"] == 1  # its own: a child inherits none of its parent's


APP_HANDLER = """
import json, signal, threading, time
import sysvmq

sig = sysvmq.timer_signal
calls = []
signal.signal(sig, lambda s, f: calls.append(s))  # the application's, before any timed call
q = sysvmq.SysVMQ.private()
try:
    began = time.monotonic()
    try:
        q.receive(timeout=0.05)
    except sysvmq.QueueEmpty:
        waited = time.monotonic() - began
    threading.Timer(0.02, lambda: q.send(b"late")).start()
    got = q.receive(timeout=10)
    print(json.dumps({
        "strategy": sysvmq.timed_wait,
        "handler_kept": signal.getsignal(sig) is not signal.SIG_DFL and signal.getsignal(sig).__name__ == "<lambda>",
        "handler_calls": len(calls),
        "waited": waited,
        "got": got.decode(),
    }))
finally:
    q.destroy()
"""


def test_an_application_handler_on_the_signal_is_left_alone_and_timed_calls_poll() -> None:
    result = json.loads(run_python(APP_HANDLER).stdout)
    assert result == {
        "strategy": "poll",
        "handler_kept": True,
        "handler_calls": 0,
        "waited": result["waited"],
        "got": "late",
    }
    assert result["waited"] >= 0.05


LATER_DISPOSITION = """
import json, signal, sys, time, warnings
import sysvmq

q = sysvmq.SysVMQ.private()
try:
    try:
        q.receive(timeout=0.01)  # installs sysvmq's handler
    except sysvmq.QueueEmpty:
        pass
    before = sysvmq.timed_wait
    calls = []
    disposition = {"handler": lambda s, f: calls.append(s), "SIG_IGN": signal.SIG_IGN, "SIG_DFL": signal.SIG_DFL}
    signal.signal(sysvmq.timer_signal or 60, disposition[sys.argv[1]])  # the application's, after sysvmq's
    waited = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            began = time.monotonic()
            try:
                q.receive(timeout=0.02)
            except sysvmq.QueueEmpty:
                waited.append(time.monotonic() - began)
    print(json.dumps({"before": before, "after": sysvmq.timed_wait, "handler_calls": len(calls),
                      "waited": waited, "warnings": [str(w.message) for w in caught]}))
finally:
    q.destroy()
"""


@pytest.mark.parametrize("disposition", ["handler", "SIG_IGN", "SIG_DFL"])
def test_a_disposition_given_to_the_signal_later_is_noticed_and_calls_poll_from_then(disposition: str) -> None:
    # Arming the timer then would call the application's handler, or sleep past the deadline (SIG_IGN),
    # or kill the process (SIG_DFL of a real-time signal): the helper checks before it arms.
    result = json.loads(run_python(LATER_DISPOSITION, disposition).stdout)
    assert (result["before"], result["after"]) == ("timer", "poll")
    assert result["handler_calls"] == 0
    assert len(result["waited"]) == 3 and all(0.02 <= w < 5 for w in result["waited"]), result["waited"]
    assert len(result["warnings"]) == 1 and "disposition of the application's" in result["warnings"][0]


SWITCHES = """
import json, os, signal, sys, time, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import sysvmq
out = {"env": os.environ.get("SYSVMQ_TIMER_SIGNAL"), "strategy": sysvmq.timed_wait,
       "signal": sysvmq.timer_signal, "warnings": [str(w.message) for w in caught]}
q = sysvmq.SysVMQ.private()
try:
    began = time.monotonic()
    try:
        q.receive(timeout=0.03)
    except sysvmq.QueueEmpty:
        out["waited"] = time.monotonic() - began
    sysvmq.set_timer_signal(None)
    out["off"] = sysvmq.timed_wait
    sysvmq.set_timer_signal(signal.SIGRTMIN + 4)
    out["on"] = [sysvmq.timed_wait, sysvmq.timer_signal == signal.SIGRTMIN + 4]
    try:
        sysvmq.set_timer_signal(signal.SIGINT)
    except ValueError as exc:
        out["refused"] = str(exc)
finally:
    q.destroy()
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "env, strategy, sig",
    [
        ("off", "poll", None),
        ("SIGRTMIN+3", "timer", "SIGRTMIN+3"),
        ("61", "timer", 61),
        ("SIGTERM", "poll", None),  # not a real-time signal: a warning, and polling
    ],
)
def test_the_environment_chooses_the_signal_or_turns_the_timer_off(env: str, strategy: str, sig: object) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", SWITCHES],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, SYSVMQ_TIMER_SIGNAL=env),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected_signal = signal.SIGRTMIN + 3 if sig == "SIGRTMIN+3" else sig
    assert (out["strategy"], out["signal"]) == (strategy, expected_signal)
    assert bool(out["warnings"]) == (env == "SIGTERM")
    assert out["waited"] >= 0.03
    assert out["off"] == "poll"
    assert out["on"] == ["timer", True]
    assert "real-time signal" in out["refused"]


def test_set_timer_signal_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="signum must be a signal number or None"):
        sysvmq.set_timer_signal("60")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"real-time signal"):
        sysvmq.set_timer_signal(signal.SIGUSR1)
    assert sysvmq.timed_wait == "timer"


def test_a_signal_storm_loses_nothing_and_keeps_deadlines(queue: SysVMQ) -> None:
    # SIGALRM at the receiving thread every 50-500 us, a handler that returns: each
    # timed wait goes on with the time left (PEP 475). The producer pauses now and
    # then, so that some waits time out, and sends into a small queue with timed
    # sends of its own.
    count = 3000
    alarms: List[int] = []
    got: List[int] = []
    early: List[float] = []
    main = threading.get_ident()
    done = threading.Event()

    def storm() -> None:
        rng = random.Random(5)
        while not done.is_set():
            signal.pthread_kill(main, signal.SIGALRM)
            time.sleep(rng.uniform(50e-6, 500e-6))  # pacing the storm, not waiting for an event

    def produce() -> None:
        for i in range(count):
            queue.send(i.to_bytes(4, "big"), timeout=30)
            if i % 300 == 0:
                time.sleep(0.03)  # a pause, so that some receives time out

    queue.update(max_size=400)
    old = signal.signal(signal.SIGALRM, lambda s, f: alarms.append(s))
    threads = [threading.Thread(target=storm), threading.Thread(target=produce)]
    try:
        for t in threads:
            t.start()
        while len(got) < count:
            began = time.monotonic()
            try:
                got.append(int.from_bytes(queue.receive(timeout=0.01), "big"))
            except sysvmq.QueueEmpty:
                if time.monotonic() - began < 0.01:
                    early.append(time.monotonic() - began)
    finally:
        done.set()
        for t in threads:
            t.join(30)
        signal.signal(signal.SIGALRM, old)
    assert got == list(range(count))  # nothing lost, duplicated or reordered
    assert not early  # no timeout ended before its deadline
    assert len(alarms) > 100


def test_a_timeout_past_floats_range_waits_without_a_deadline(queue: SysVMQ) -> None:
    queue.send(b"x", timeout=10**400)  # an int too big for a float: for ever, as math.inf is
    assert queue.receive(timeout=10**400) == b"x"
    with pytest.raises(ValueError, match="non-negative"):
        queue.receive(timeout=-(10**400))
