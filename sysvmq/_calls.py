"""The C state of calls in progress (struct sysvmq_call), and a handle's pools of them.

A call takes a state from its handle's pool and puts it back when done, so
threads never share one and no lock is held: deque pop and append are atomic.
The state is where C records what a call did before it returns (messages
sent, the length of the text taken), so that it survives a signal handler
that raises and costs Python the return value.
"""

import platform
import struct
import sys
from collections import deque
from typing import Any, Callable, Deque, List, Tuple

from ._ffi import CALL_P, CHARS, HEADROOM, LONGS, SIZES, ffi, lib, new

__all__ = ["Call", "Batch", "Pool", "split", "POOL_ROOM", "BATCH_COUNT", "BATCH_BYTES", "BATCH_WANTED"]

# A state with more room than this, made for one receive_into of a big buffer,
# is freed after that call instead of kept in the pool for the handle's life.
POOL_ROOM = 1 << 16
BATCH_COUNT = 256  # messages one receive_many crossing takes at most
BATCH_WANTED = 64  # the least a batch state is made for: most calls ask for up to this many
BATCH_BYTES = 1 << 20  # room for texts in one crossing, at most (and at least one message)

_LONG = ffi.sizeof("long")
PYPY = platform.python_implementation() == "PyPy"
# Signal handlers may run between any two bytecodes, not only at calls and backward jumps.
ANYWHERE = PYPY or sys.version_info < (3, 11)
_reset = lib.sysvmq_reset
_Struct = struct.Struct
_NO_CUT = _Struct("").unpack_from
# A state is made as zeroed longs cast to the struct, with no lock: a lock around it could be
# left held for ever by a signal handler that raises inside it. (The lock was once there for
# PyPy's "expected integer, got dict object", which was cffi mixing up type names parsed in
# several threads: see _ffi.) The struct's fields are longs, size_ts and pointers, so an array
# of longs is aligned for it.
_HEAD = ffi.sizeof("struct sysvmq_call")
if ffi.alignof("struct sysvmq_call") > ffi.alignof("long"):
    raise ImportError("sysvmq: struct sysvmq_call needs more alignment than an array of long gives")


class Call:
    """One call's state: the struct, its text as a buffer, its type as a view.

    Attributes:
        c: the ``struct sysvmq_call *``; it does not own its memory: keep the Call while C uses it.
        text: ``c.mtext`` as a cffi buffer of ``room`` bytes; slicing it makes bytes.
        mtype: ``c.mtype`` as a one-item memoryview of C long (cheaper to read than the field).
        room: bytes in the msgbuf: the longest text it sends or takes.
    """

    __slots__ = ("c", "text", "mtype", "room", "mem")

    def __init__(self, msqid: int, maxlen: int, room: int) -> None:
        self.mem, self.c, self.text, self.mtype, self.room = _state(msqid, maxlen, room)

    def grow(self, room: int) -> None:
        """Room for ``room`` bytes: a new struct in place of this one, with nothing done.

        A handler may raise between any two of the assignments, so the old memory and the
        new are both kept until every attribute points into the new, and ``room`` is 0
        meanwhile: ``Pool.give_back`` drops a state left so, and nothing can read freed memory.
        """
        mem, c, text, mtype, room = _state(self.c.msqid, self.c.maxlen, room)
        self.room = 0
        self.mem = (self.mem, mem)
        self.c = c
        self.text = text
        self.mtype = mtype
        self.mem = mem
        self.room = room


def _state(msqid: int, maxlen: int, room: int) -> Tuple[Any, Any, Any, memoryview, int]:
    """A new state's memory, struct, text buffer, type view and room (see Call)."""
    room = max(room, maxlen, 1)
    # ffi.new clears the memory: the state starts with nothing done.
    mem = ffi.new(LONGS, -(-(_HEAD + room) // _LONG))
    c = ffi.cast(CALL_P, mem)
    c.msqid, c.maxlen, c.len, c.room = msqid, maxlen, -1, room
    text = ffi.buffer(c.mtext, room)
    mtype = memoryview(ffi.buffer(ffi.addressof(c[0], "mtype"), _LONG)).cast("l")
    return mem, c, text, mtype, room


class Batch:
    """receive_many's state: a call whose texts go end to end into one area.

    Attributes:
        call: the ``Call``; its ``c.dest`` is the texts area, ``c.sizes`` and
            ``c.types`` each message's length and type, ``c.fmt`` a struct
            format that cuts the texts apart.
        view: the texts area as a buffer.
        fmt: the format's buffer, for ``ffi.string``; None on PyPy, whose JIT
            cannot specialise struct.unpack_from for a format it sees once: there
            ``split`` cuts the texts apart by ``c.sizes``.
        cut_most: the most texts the fast paths cut with ``cut``; more, ``split`` cuts.
            All on CPython; SYSVMQ_FEW on PyPy, where the struct kept for a stream of
            one size beats ``split``'s loop (a loop of two costs a trace exit) but
            not for long batches.
        capacity: the most messages one crossing takes.
        sure: the most one crossing is sure to take, whatever their lengths
            (at most ``capacity``, and as many as ``buffer_size`` fills the area with).
        c: ``call.c``, one attribute nearer.
        types: ``c.types`` as a memoryview of C long, for ``tolist``.
        rawtypes: ``c.types`` as a cffi buffer: slicing it snapshots them in one copy.
        gen: ``c.fmt_gen`` as a one-item memoryview of C long: it changes when C writes a new format.
        seen, cut: the ``gen`` that ``cut`` was made at, and the ``unpack_from`` of a
            ``struct.Struct`` of that format (see ``cutter``).
    """

    __slots__ = (
        "call",
        "view",
        "fmt",
        "capacity",
        "sure",
        "c",
        "types",
        "rawtypes",
        "gen",
        "seen",
        "cut",
        "cut_most",
        "_format",
        "_keep",
    )

    def __init__(self, msqid: int, maxlen: int, capacity: int) -> None:
        self.call = call = Call(msqid, maxlen, 0)
        room = max(maxlen, min(capacity * maxlen, BATCH_BYTES), 1)
        out = new(CHARS, HEADROOM + room)
        texts = out + HEADROOM  # msgrcv puts each type just before its text
        # C writes the format on every interpreter (only when a batch's sizes change): PyPy cuts
        # few texts with it, through cut, and leaves the general path to split.
        self._format = fmt = new(CHARS, capacity * lib.SYSVMQ_FMT_ITEM + 1)
        self.fmt = None if PYPY else fmt
        self.cut_most = lib.SYSVMQ_FEW if PYPY else capacity
        # Cleared: C compares each new size with the last batch's before it writes it (a format
        # kept while they repeat), and must never compare with memory nothing wrote.
        sizes = ffi.new(SIZES, capacity)
        types = new(LONGS, capacity)
        c = call.c
        c.dest, c.size, c.sizes, c.types, c.fmt = texts, room, sizes, types, fmt
        self.view = ffi.buffer(texts, room)
        self.capacity = capacity
        self.sure = min(capacity, room // maxlen) if maxlen else capacity
        self.c = c
        self.rawtypes = ffi.buffer(types, capacity * _LONG)
        self.types = memoryview(self.rawtypes).cast("l")
        self.gen = memoryview(ffi.buffer(ffi.addressof(c[0], "fmt_gen"), _LONG)).cast("l")
        self.seen = -1  # C counts from 0: the first crossing's format is new
        self.cut: Callable[[Any], Tuple[bytes, ...]] = _NO_CUT
        self._keep = (out, sizes, types)  # the C memory c points to lives as long as this

    def cutter(self) -> Callable[[Any], Tuple[bytes, ...]]:
        """What cuts ``view`` into the last crossing's texts: ``cut`` if the format is the one
        it was made from, else one made anew. A stream of messages of one size has one format: the
        struct is made once, not looked up by the format's text every batch."""
        gen = self.gen[0]
        if gen != self.seen:
            self.cut = _Struct(ffi.string(self._format)).unpack_from
            self.seen = gen
        return self.cut


def split(b: Batch, n: int) -> List[bytes]:
    """The n texts a receive_many crossing put end to end in b, cut apart by their lengths (PyPy's way)."""
    sizes, view = b.call.c.sizes, b.view
    texts = []
    at = 0
    for i in range(n):
        end = at + sizes[i]
        texts.append(view[at:end])
        at = end
    return texts


class _Fresh(Deque[Any]):
    """A pool that hands out its states reset: where a handler may run between any two bytecodes
    (``ANYWHERE``), one that raises after a state is taken and before C is entered must find no
    past call's progress in it. Elsewhere a plain deque, and the hot paths pay nothing."""

    __slots__ = ()

    def pop(self) -> Any:  # type: ignore[override]  # a deque pops from the right only
        state = super().pop()
        _reset(state.c)
        return state


class Pool:
    """A handle's idle states: ``calls`` for single calls and send_many, ``batches`` for receive_many."""

    __slots__ = ("msqid", "maxlen", "calls", "batches")

    def __init__(self, msqid: int, maxlen: int) -> None:
        self.msqid = msqid
        self.maxlen = maxlen
        self.calls: Deque[Call] = _Fresh() if ANYWHERE else deque()
        self.batches: Deque[Batch] = _Fresh() if ANYWHERE else deque()

    def call(self, room: int = 0) -> Call:
        """An idle call with room for ``room`` bytes (and for the handle's buffer_size), nothing done yet."""
        try:
            call = self.calls.pop()
        except IndexError:
            return Call(self.msqid, self.maxlen, room)
        if call.room < room:
            self.calls.append(call)
            return Call(self.msqid, self.maxlen, room)
        _reset(call.c)
        return call

    def give_back(self, call: Call) -> None:
        """Return a call to the pool, unless it is too big to keep (receive_into of a huge buffer)
        or a handler that raised left it half grown (room 0: see Call.grow)."""
        room = call.room
        if room <= POOL_ROOM or room <= self.maxlen:
            if room:
                self.calls.append(call)
        else:
            ffi.release(call.mem)

    def batch(self, capacity: int) -> Batch:
        try:
            b = self.batches.pop()
        except IndexError:
            return Batch(self.msqid, self.maxlen, capacity)
        return b if b.capacity >= capacity else Batch(self.msqid, self.maxlen, capacity)

    def __getstate__(self) -> None:  # never pickled with a handle: made anew
        raise TypeError("a pool of C states cannot be pickled")
