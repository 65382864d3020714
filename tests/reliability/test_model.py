"""The library against a model of the kernel's queue: random sequences of calls, every outcome checked.

A Hypothesis state machine drives one private queue through several handles
(one per buffer size) with sends, batches, receives of every selector, peeks
and changes of max_size, and checks each result and each exception against
``Model``: a list of (type, bytes) that follows msgrcv(2)'s selection rules and
msgsnd(2)'s limits as Linux applies them (ipc/msg.c). After every step the
queue's ``stats()`` must agree with the model.

Every call is one that cannot wait: ``block=False``, ``IPC_NOWAIT`` or
``timeout=0``; a blocking call is made only where the model says it finds what
it wants at once, under an alarm that fails the test should it wait.

The budget is a Hypothesis settings profile, chosen with SYSVMQ_MODEL_PROFILE:
``model-ci`` (the default: 800 examples of 50 steps, under a minute),
``model-soak`` (5,000 of 100) or ``model-quick`` (150 of 50, for .ci/sanitizers).
"""

import contextlib
import os
import random
import signal
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from support import register, remove

import sysvmq
from sysvmq import Message, SysVMQ
from sysvmq._ffi import LONG_MAX, LONG_MIN

LIMITS = sysvmq.limits()
MSGMAX = LIMITS.msgmax
MSGMNB = LIMITS.msgmnb
# The handles' buffer sizes: below, at and around the sizes sent.
BUFFER_SIZES = [0, 1, 64, 1000, MSGMAX]

# Hypothesis keeps the choices of its recent examples (up to 10,000): about 0.3 MB an example of 50
# steps, 0.55 MB of 100, so the soak's budget is set by memory as well as time.
_COMMON: Dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("model-ci", max_examples=800, stateful_step_count=50, **_COMMON)
settings.register_profile("model-soak", max_examples=5_000, stateful_step_count=100, **_COMMON)
settings.register_profile("model-quick", max_examples=150, stateful_step_count=50, **_COMMON)  # under ASan
PROFILE = os.environ.get("SYSVMQ_MODEL_PROFILE", "model-ci")

Msg = Tuple[int, bytes]  # (type, data) as the kernel holds it


class Model:
    """A System V queue as Linux keeps one: messages in arrival order, max_size bytes and as many messages."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.messages: List[Msg] = []

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.messages)

    def fits(self, n: int) -> bool:
        """msg_fits_inqueue: the bytes, and the count, which Linux also caps at max_size."""
        return self.size + n <= self.max_size and len(self.messages) + 1 <= self.max_size

    def find(self, mtype: int, except_: bool) -> Optional[int]:
        """The index msgrcv(2) takes for this selector, or None."""
        if mtype == 0:
            return 0 if self.messages else None
        if mtype < 0:
            # The oldest of the lowest type <= |mtype| (LONG_MIN reads as LONG_MAX: all).
            best: Optional[int] = None
            for i, (t, _) in enumerate(self.messages):
                if t <= -mtype and (best is None or t < self.messages[best][0]):
                    best = i
            return best
        for i, (t, _) in enumerate(self.messages):
            if (t != mtype) if except_ else (t == mtype):
                return i
        return None


# What an outcome may be: a value, or an exception class (with its count or received checked apart).
Outcome = Tuple[str, Any]


def run(call: Callable[[], Any]) -> Outcome:
    try:
        return ("ok", call())
    except sysvmq.SysVMQError as exc:
        return ("raise", exc)


class Hung(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: float = 10.0) -> Iterator[None]:
    """A blocking call the model says finishes at once: fail, do not hang, if it waits."""

    def hung(signum: int, frame: object) -> None:
        raise Hung("a call the model says finishes at once waited")

    old = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_PATTERN = bytes(range(256)) * (MSGMAX // 256 + 2)


def payload(serial: int, n: int, kind: str) -> Tuple[Any, bytes]:
    """A message of n bytes as ``kind`` (bytes, str, bytearray, memoryview), and the bytes it sends."""
    tag = f"{serial}:"
    if kind == "str":
        # UTF-8 of n bytes, two-byte characters included.
        rest = max(n - len(tag), 0)
        text = (tag + "é" * (rest // 2) + "x" * (rest % 2))[:n] if n >= len(tag) else tag[:n]
        return text, text.encode()
    data = (tag.encode() + _PATTERN)[:n]
    if kind == "bytearray":
        return bytearray(data), data
    if kind == "memoryview":
        # A view into the middle of a larger buffer: contiguous, at an offset.
        return memoryview(bytearray(b"<<<" + data + b">>>"))[3 : 3 + n], data
    return data, data


send_types = st.one_of(st.integers(1, 4), st.integers(1, LONG_MAX), st.just(LONG_MAX))
receive_types = st.one_of(
    st.just(0),
    st.integers(1, 4),
    st.integers(-4, -1),
    st.integers(LONG_MIN, LONG_MAX),
    st.sampled_from([LONG_MAX, -LONG_MAX, LONG_MIN, 1, -1]),
)
sizes = st.one_of(st.integers(0, 8), st.integers(0, 200), st.integers(0, MSGMAX), st.sampled_from([MSGMAX, MSGMAX - 1]))
KINDS = ["bytes", "str", "bytearray", "memoryview"]
kinds = st.sampled_from(KINDS)
buffer_sizes = st.sampled_from(BUFFER_SIZES)
# How a call is told not to wait; "block" is used only where the model says it will not.
send_modes = st.sampled_from(["block=False", "IPC_NOWAIT", "timeout=0", "block"])
receive_modes = st.sampled_from(["block=False", "IPC_NOWAIT", "timeout=0", "block"])


# 200 to 300 short messages, more than one receive_many crossing takes (256): made from a seed, since
# Hypothesis keeps every choice of its last examples, and a list of 300 drawn items is 600 choices.
@st.composite
def long_batches(draw: Callable[..., Any]) -> List[Tuple[int, str]]:
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    return [(rng.randint(0, 4), rng.choice(KINDS)) for _ in range(rng.randint(200, 300))]


max_sizes = st.one_of(st.integers(1, 16), st.integers(1, MSGMNB), st.sampled_from([MSGMAX, MSGMNB]))


def wait_args(mode: str) -> Dict[str, Any]:
    """The keyword arguments of a mode, IPC_NOWAIT as the flags bit."""
    return {
        "block=False": {"block": False},
        "IPC_NOWAIT": {"flags": sysvmq.IPC_NOWAIT},
        "timeout=0": {"timeout": 0},
        "block": {},
    }[mode]


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.q = register(SysVMQ.private())
        self.handles: Dict[int, SysVMQ] = {}
        self.model = Model(self.q.stats().max_size)
        self.serial = 0

    def teardown(self) -> None:
        remove(self.q)

    def handle(self, buffer_size: int) -> SysVMQ:
        """The handle with this buffer_size on the machine's queue (made on first use)."""
        if buffer_size not in self.handles:
            self.handles[buffer_size] = SysVMQ.attach(self.q.id, buffer_size=buffer_size)
        return self.handles[buffer_size]

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    # -- sends -------------------------------------------------------------------

    @rule(bs=buffer_sizes, n=sizes, kind=kinds, mtype=send_types, mode=send_modes)
    def send(self, bs: int, n: int, kind: str, mtype: int, mode: str) -> None:
        m = self.model
        obj, data = payload(self.next_serial(), n, kind)
        if n > m.max_size:
            expect: Outcome = ("raise", sysvmq.MessageTooLarge)
        elif m.fits(n):
            expect = ("ok", None)
        else:
            expect = ("raise", sysvmq.QueueFull)
        if mode == "block" and expect[1] is sysvmq.QueueFull:
            mode = "block=False"  # blocking would wait for room; MessageTooLarge comes before any wait
        args = wait_args(mode)
        with alarm():
            got = run(lambda: self.handle(bs).send(obj, mtype, args.pop("flags", 0), **args))
        check(got, expect, count=0)
        if got[0] == "ok":
            m.messages.append((mtype, data))

    @rule(
        bs=buffer_sizes,
        batch=st.one_of(st.lists(st.tuples(sizes, kinds), max_size=12), long_batches()),
        mtype=send_types,
        mode=st.sampled_from(["block=False", "timeout=0", "block"]),
    )
    def send_many(self, bs: int, batch: List[Tuple[int, str]], mtype: int, mode: str) -> None:
        m = self.model
        made = [payload(self.next_serial(), n, kind) for n, kind in batch]
        objs = [obj for obj, _ in made]
        datas = [data for _, data in made]
        # Every message is checked before the first is sent; then as many as fit, in order.
        fitting = 0
        trial = Model(m.max_size)
        trial.messages = list(m.messages)
        for data in datas:
            if not trial.fits(len(data)):
                break
            trial.messages.append((mtype, data))
            fitting += 1
        if any(len(d) > m.max_size for d in datas):
            expect: Outcome = ("raise", sysvmq.MessageTooLarge)
            count = 0
        elif fitting == len(datas):
            expect, count = ("ok", len(datas)), len(datas)
        elif mode == "timeout=0" or fitting == 0:
            expect, count = ("raise", sysvmq.QueueFull), fitting  # timed out with `count` queued
        else:
            expect, count = ("ok", fitting), fitting  # block=False returns how many fitted
        if mode == "block" and expect[1] is not sysvmq.MessageTooLarge and fitting < len(datas):
            mode = "block=False"  # blocking would wait for room
        with alarm():
            got = run(lambda: self.handle(bs).send_many(objs, mtype, **wait_args(mode)))
        check(got, expect, count=count)
        m.messages.extend((mtype, d) for d in datas[:count])

    # -- receives ----------------------------------------------------------------

    def _expect_one(self, bs: int, mtype: int, except_: bool, truncate: bool, mode: str) -> Tuple[Outcome, str]:
        """What one receive of this handle should do: the outcome (a Message), and the mode to use."""
        m = self.model
        i = m.find(mtype, except_)
        if i is None:
            expect: Outcome = ("raise", sysvmq.QueueEmpty)
        else:
            t, data = m.messages[i]
            if len(data) > bs and not truncate:
                expect = ("raise", sysvmq.MessageTooLarge)  # and it stays queued
            else:
                expect = ("ok", Message(data[:bs], t))
        if mode == "block" and expect[1] is sysvmq.QueueEmpty:
            mode = "block=False"  # blocking would wait; E2BIG comes at once
        return expect, mode

    def _take(self, mtype: int, except_: bool) -> None:
        i = self.model.find(mtype, except_)
        assert i is not None
        del self.model.messages[i]

    @rule(
        bs=buffer_sizes,
        mtype=receive_types,
        except_=st.booleans(),
        truncate=st.booleans(),
        mode=receive_modes,
        typed=st.booleans(),
    )
    def receive(self, bs: int, mtype: int, except_: bool, truncate: bool, mode: str, typed: bool) -> None:
        expect, mode = self._expect_one(bs, mtype, except_, truncate, mode)
        args = wait_args(mode)
        flags = args.pop("flags", 0) | (sysvmq.MSG_EXCEPT if except_ else 0)
        h = self.handle(bs)
        call = h.receive_message if typed else h.receive
        with alarm():
            got = run(lambda: call(mtype, flags, truncate=truncate, **args))
        if not typed and expect[0] == "ok":
            expect = ("ok", expect[1].data)
        check(got, expect, received=[])
        if got[0] == "ok":
            self._take(mtype, except_)

    @rule(
        mtype=receive_types,
        except_=st.booleans(),
        truncate=st.booleans(),
        mode=receive_modes,
        length=st.one_of(st.integers(0, MSGMAX + 64), st.integers(-40, 40)),
        relative=st.booleans(),
        view=st.booleans(),
    )
    def receive_into(
        self, mtype: int, except_: bool, truncate: bool, mode: str, length: int, relative: bool, view: bool
    ) -> None:
        # A buffer shorter or longer than the message it would take (relative), or of any length.
        i = self.model.find(mtype, except_)
        target = len(self.model.messages[i][1]) if i is not None else 0
        length = max(0, target + length) if relative else abs(length)
        expect, mode = self._expect_one(length, mtype, except_, truncate, mode)
        data = expect[1].data if expect[0] == "ok" else b""
        args = wait_args(mode)
        flags = args.pop("flags", 0) | (sysvmq.MSG_EXCEPT if except_ else 0)
        # Guard bytes on both sides: nothing but the message's bytes may be written.
        whole = bytearray(b"\xa5" * (length + 16))
        buffer: Any = memoryview(whole)[8 : 8 + length] if view else bytearray(b"\xa5" * length)
        with alarm():
            got = run(lambda: self.handle(MSGMAX).receive_into(buffer, mtype, flags, truncate=truncate, **args))
        if expect[0] == "ok":
            msg = expect[1]
            expect = ("ok", (len(msg.data), msg.type))
        check(got, expect, received=[])
        written = bytes(buffer)
        if got[0] == "ok":
            n = got[1][0]
            assert written[:n] == data, "receive_into wrote other bytes than the message's"
            self._take(mtype, except_)
        else:
            n = 0
        assert written[n:] == b"\xa5" * (length - n), "receive_into wrote past the message"
        if view:
            assert whole[:8] == whole[8 + length :] == b"\xa5" * 8, "receive_into wrote outside its buffer"

    @rule(
        bs=buffer_sizes,
        max_count=st.one_of(st.integers(1, 8), st.integers(1, 300)),
        mtype=receive_types,
        truncate=st.booleans(),
        mode=receive_modes,
        typed=st.booleans(),
    )
    def receive_many(self, bs: int, max_count: int, mtype: int, truncate: bool, mode: str, typed: bool) -> None:
        # Take as msgrcv would, one after another, until max_count, no match, or one too long.
        m = self.model
        trial = Model(m.max_size)
        trial.messages = list(m.messages)
        taken: List[Message] = []
        first_error: Any = sysvmq.QueueEmpty
        while len(taken) < max_count:
            i = trial.find(mtype, False)
            if i is None:
                break
            t, data = trial.messages[i]
            if len(data) > bs and not truncate:
                first_error = sysvmq.MessageTooLarge
                break
            taken.append(Message(data[:bs], t))
            del trial.messages[i]
        expect: Outcome = ("ok", taken if typed else [msg.data for msg in taken]) if taken else ("raise", first_error)
        if mode == "block" and expect[1] is sysvmq.QueueEmpty:
            mode = "block=False"
        if mode == "IPC_NOWAIT":
            mode = "block=False"  # the batch calls take no flags
        h = self.handle(bs)
        call = h.receive_many_messages if typed else h.receive_many
        with alarm():
            got = run(lambda: call(max_count, mtype, truncate=truncate, **wait_args(mode)))
        check(got, expect, received=[])
        if got[0] == "ok":
            m.messages = trial.messages

    @rule(bs=buffer_sizes, index=st.one_of(st.integers(0, 3), st.integers(0, 400)), truncate=st.booleans())
    def peek(self, bs: int, index: int, truncate: bool) -> None:
        m = self.model
        if index >= len(m.messages):
            expect: Outcome = ("raise", sysvmq.QueueEmpty)
        else:
            t, data = m.messages[index]
            if len(data) > bs and not truncate:
                expect = ("raise", sysvmq.MessageTooLarge)
            else:
                expect = ("ok", Message(data[:bs], t))
        check(run(lambda: self.handle(bs).peek(index, truncate=truncate)), expect)

    # -- control ------------------------------------------------------------------

    @rule(bs=buffer_sizes, max_size=max_sizes)
    def update(self, bs: int, max_size: int) -> None:
        # Up or down; lowered below what is queued, the messages stay and sends wait for room.
        self.handle(bs).update(max_size=max_size)
        self.model.max_size = max_size

    @invariant()
    def stats_match(self) -> None:
        st_ = self.q.stats()
        m = self.model
        assert (st_.count, st_.size, st_.max_size) == (len(m.messages), m.size, m.max_size)


def check(got: Outcome, expect: Outcome, count: Optional[int] = None, received: Optional[List[Message]] = None) -> None:
    """The call did what the model says; an exception carries what the call moved."""
    # What happened, for --hypothesis-show-statistics: that every outcome is reached.
    event(f"{sys._getframe(1).f_code.co_name}: {'ok' if expect[0] == 'ok' else expect[1].__name__}")
    if expect[0] == "ok":
        assert got[0] == "ok", f"expected {expect[1]!r}, got {got[1]!r}"
        assert got[1] == expect[1], f"expected {expect[1]!r}, got {got[1]!r}"
        return
    assert got[0] == "raise", f"expected {expect[1].__name__}, got {got[1]!r}"
    exc = got[1]
    assert type(exc) is expect[1], f"expected {expect[1].__name__}, got {exc!r}"
    if count is not None:
        assert exc.count == count, f"{exc!r} says {exc.count} queued, the model {count}"
    if received is not None:
        assert list(exc.received) == received, f"{exc!r} says {exc.received!r} taken"


QueueMachine.TestCase.settings = settings.get_profile(PROFILE)
TestQueueModel = QueueMachine.TestCase
