"""review7: send_many's 'one snapshot' still lets the lengths C reads disagree with the texts it joins."""

import struct
import sys
from typing import Any, List

import pytest

import sysvmq
from sysvmq import SysVMQ


def _drain(q: SysVMQ) -> List[bytes]:
    out = []
    while True:
        try:
            out.append(q.receive_message(block=False).data)
        except sysvmq.QueueEmpty:
            return out


def test_send_many_list_shrunk_after_its_len_sends_only_what_the_snapshot_holds(queue: SysVMQ) -> None:
    # A genuine list. Something else (another thread; here a profile hook, which runs at the same
    # points a thread switch can) shortens it right after send_many's len(messages), before
    # messages[:]. total still says 8, the lengths array holds 5: C reads 3 size_t past its end
    # (batch_fits, then sysvmq_send_many), and sends what they say from past the joined texts.
    # The freed blocks below only make those 3 words predictable (0 or 300), so the read shows.
    for word in (0, 300):
        filler = bytes(8) + struct.pack("@N", word) * 3  # [1:]: a new 31-byte bytes each time
        for _ in range(20):
            msgs = [b"%d" % i * 3 for i in range(8)]
            armed = [True]

            def hook(frame: Any, event: str, arg: Any) -> None:
                if armed[0] and event == "c_return" and arg is len and frame.f_code.co_name == "send_many":
                    armed[0] = False
                    del msgs[5:]
                    junk = [filler[1:] for _ in range(64)]  # 64-byte blocks, as the lengths array's
                    del junk

            sys.setprofile(hook)
            try:
                n = queue.send_many(msgs)
            finally:
                sys.setprofile(None)
            got = _drain(queue)
            texts = {b"%d" % i * 3 for i in range(8)}  # before or after the cut, these are the caller's
            assert n == len(got) and all(g in texts for g in got), (
                f"send_many of a list shortened from 8 to 5 after its len() returned {n} and queued {len(got)} "
                f"messages: {[g[:24] for g in got]} (C read the lengths array, and then the texts, out of bounds)"
            )


class _Shifty:
    """An iterable that gives 100-byte texts the first time and 1-byte texts after."""

    def __init__(self) -> None:
        self.k = 0

    def __iter__(self) -> Any:
        self.k += 1
        return iter([b"a" * 100] * 5 if self.k == 1 else [b"b"] * 5)


class _FakeList:
    """Not a list, though its __class__ says so: send_many's fast path takes it for one."""

    __class__ = list  # type: ignore[assignment]

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: Any) -> Any:
        return _Shifty()


@pytest.mark.parametrize("kw", [{}, {"timeout": 5}, {"block": False}], ids=["fast", "timeout", "nonblocking"])
def test_send_many_snapshot_of_a_faked_list_is_read_once(queue: SysVMQ, kw: Any) -> None:
    # messages.__class__ is list is believed, so messages[:] may be any iterable; _byte_lengths
    # iterates it, b"".join iterates it again: 500 bytes of lengths over a 5-byte blob, and C
    # copies 495 bytes of whatever follows the blob into the queue (heap pointers were seen).
    try:
        n = queue.send_many(_FakeList(), **kw)
    except TypeError:
        return  # refusing it is fine
    got = _drain(queue)
    allowed = {b"a" * 100, b"b"}
    assert n == len(got) and all(g in allowed for g in got), (
        f"send_many queued {n} messages that are not the caller's texts: {[(len(g), g[:24]) for g in got]}"
        " (C read past the end of the joined texts)"
    )


@pytest.mark.parametrize("k", [2, 5])
def test_send_many_names_the_str_it_cannot_encode(queue: SysVMQ, k: int) -> None:
    # Low: a lone surrogate raises UnicodeEncodeError from str.encode in message_arg, which says
    # "position 0" but not which message; every other refusal of a text names messages[i].
    messages: List[Any] = [b"a"] * k
    messages[1] = "ok \ud800"
    with pytest.raises(ValueError) as info:
        queue.send_many(messages)
    assert "messages[1]" in str(info.value), f"the error does not say which message: {info.value!r}"
    assert _drain(queue) == []
