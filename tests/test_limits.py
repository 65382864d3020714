"""Limits: a message that can never be queued is MessageTooLarge in every wait mode, before anything is sent;
a full queue says which limit it hit; max_size takes only what the kernel keeps."""

import json
import os
import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest
from support import SLEEPING, run_python, wait_blocked

import sysvmq
from sysvmq import SysVMQ

MSGMAX = sysvmq.limits().msgmax

# Every way a send may be asked to wait, or not.
MODES: Dict[str, Dict[str, Any]] = {
    "block=False": {"block": False},
    "IPC_NOWAIT": {"flags": sysvmq.IPC_NOWAIT},
    "timeout=0": {"timeout": 0},
    "timeout=1": {"timeout": 1},
    "blocking": {},
}


def _send(q: SysVMQ, message: bytes, mode: Dict[str, Any]) -> None:
    q.send(message, 1, mode.get("flags", 0), **{k: v for k, v in mode.items() if k != "flags"})


def _send_many(q: SysVMQ, messages: List[bytes], mode: Dict[str, Any]) -> int:
    kwargs = {k: v for k, v in mode.items() if k != "flags"}
    if "flags" in mode:
        kwargs["block"] = False  # send_many spells IPC_NOWAIT as block=False
    return q.send_many(messages, **kwargs)


def _bounded(call: Callable[[], object]) -> BaseException:
    """Run call in a thread (a blocking send that hangs must not hang the suite); return what it raised."""
    out: List[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the call waited for room the message can never have"
    assert out, "the call returned"
    return out[0]


@pytest.mark.parametrize("mode", list(MODES))
def test_a_message_longer_than_max_size_is_too_large_in_every_mode(queue: SysVMQ, mode: str) -> None:
    queue.update(max_size=100)
    exc = _bounded(lambda: _send(queue, b"x" * 101, MODES[mode]))
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert "max_size (100)" in str(exc)
    assert exc.count == 0
    assert queue.stats().count == 0


@pytest.mark.parametrize("mode", list(MODES))
def test_a_message_longer_than_msgmax_is_too_large_in_every_mode(queue: SysVMQ, mode: str) -> None:
    exc = _bounded(lambda: _send(queue, b"x" * (MSGMAX + 1), MODES[mode]))
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert f"kernel.msgmax ({MSGMAX})" in str(exc)
    assert queue.stats().count == 0


@pytest.mark.parametrize("mode", list(MODES))
def test_send_many_refuses_a_batch_with_one_that_never_fits_before_sending_any(queue: SysVMQ, mode: str) -> None:
    queue.update(max_size=100)
    exc = _bounded(lambda: _send_many(queue, [b"a", b"x" * 101, b"b"], MODES[mode]))
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert "messages[1] of 101 bytes exceeds the queue's max_size (100)" in str(exc)
    assert exc.count == 0
    assert queue.stats().count == 0


def test_a_too_large_message_on_a_full_queue_is_still_too_large(queue: SysVMQ) -> None:
    # Full or not, it could never fit: a caller that retries on QueueFull would loop for ever.
    queue.update(max_size=100)
    queue.send(b"f" * 100)
    with pytest.raises(sysvmq.MessageTooLarge):
        queue.send(b"x" * 101, block=False)


def test_a_queue_full_by_count_names_that_limit(queue: SysVMQ) -> None:
    # Linux caps the number of messages at max_size too: 1,000 empty messages fill a 1,000-byte queue.
    queue.update(max_size=1000)
    assert queue.send_many([b""] * 1000) == 1000
    with pytest.raises(sysvmq.QueueFull, match=r"holds 1000 messages, the most its max_size \(1000\) allows"):
        queue.send(b"", block=False)


def test_a_queue_full_by_bytes_says_how_many_are_used(queue: SysVMQ) -> None:
    queue.update(max_size=1000)
    queue.send(b"x" * 900)
    with pytest.raises(sysvmq.QueueFull, match=r"no room for a 200-byte message: 900 of its max_size \(1000\)"):
        queue.send(b"y" * 200, block=False)


def test_update_max_size_is_what_later_sends_are_checked_against(queue: SysVMQ) -> None:
    queue.update(max_size=4000)
    with pytest.raises(sysvmq.MessageTooLarge, match=r"max_size \(4000\)"):
        queue.send(b"x" * 5000, block=False)
    queue.update(max_size=6000)  # no stale reading of 4000 refuses this one
    queue.send(b"x" * 5000, block=False)
    assert queue.stats().count == 1


def test_update_reads_max_size_for_sends_after_ipc_set_not_before(queue: SysVMQ, monkeypatch: Any) -> None:
    # A send that reads max_size while update() runs must not keep the old value.
    import sysvmq._queue as facade

    real = facade.lib

    class Lib:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def msgctl(self, msqid: int, cmd: int, buf: Any) -> int:
            if cmd == sysvmq.IPC_SET:
                queue._capacity.refresh()  # what a concurrent send would read, just before IPC_SET
            return real.msgctl(msqid, cmd, buf)  # type: ignore[no-any-return]

    queue.update(max_size=4000)
    monkeypatch.setattr(facade, "lib", Lib())
    queue.update(max_size=6000)
    monkeypatch.undo()
    queue.send(b"x" * 5000, block=False)


@pytest.mark.parametrize("size", [2**31, 2**32, 2**32 + 5])
def test_max_size_beyond_what_the_kernel_keeps_is_refused(queue: SysVMQ, size: int) -> None:
    # The kernel takes msg_qbytes through an int: 2**32 would be kept as 0.
    before = queue.stats().max_size
    with pytest.raises(ValueError, match=r"max_size must be 1\.\.2147483647"):
        queue.update(max_size=size)
    assert queue.stats().max_size == before


# -- a producer that may write but not read --------------------------------------

PRODUCER = """
import json, os, sys
import sysvmq

msqid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setgid(gid)
os.setuid(65534)
q = sysvmq.SysVMQ.attach(msqid)
out = {}
try:
    q.stats()
except sysvmq.QueuePermissionError:
    out["can_read"] = False
try:
    q.send(b"x" * 101)  # blocking: without a reading of max_size it would wait for ever
except sysvmq.MessageTooLarge as exc:
    out["error"] = str(exc)
q.send(b"fits")
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
@pytest.mark.parametrize("mode, gid", [(0o622, 65534), (0o620, 4242)])
def test_a_write_only_producer_learns_max_size_without_read_permission(queue: SysVMQ, mode: int, gid: int) -> None:
    queue.update(max_size=100, mode=mode, gid=4242)  # 0o620: the producer writes as the group
    result = json.loads(run_python(PRODUCER, str(queue.id), str(gid), timeout=30).stdout)
    assert result == {"can_read": False, "error": result.get("error")}
    assert "max_size (100)" in result["error"]
    assert queue.receive(block=False) == b"fits"


# -- readings of max_size that went stale --------------------------------------
#
# Sends check a message against a reading of max_size trusted for READING_TTL;
# here it is trusted for an hour, so that these tests do not depend on timing.

LOWER = "import sys, sysvmq; sysvmq.SysVMQ.attach(int(sys.argv[1])).update(max_size=int(sys.argv[2]))"


@pytest.fixture
def trusted_for_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sysvmq._kernel, "READING_TTL", 3600.0)


@pytest.mark.usefixtures("trusted_for_an_hour")
@pytest.mark.parametrize("mode", list(MODES))
def test_max_size_lowered_through_another_handle_binds_this_one(queue: SysVMQ, mode: str) -> None:
    # Found by the model test (tests/reliability/test_model.py): each handle kept its own reading,
    # so a handle that had read 16384 let a batch through that update() on another had made impossible.
    other = SysVMQ.attach(queue.id)
    assert other.send_many([b"a"]) == 1  # its reading: max_size 16384
    queue.receive()
    queue.update(max_size=1)
    exc = _bounded(lambda: _send_many(other, [b"a", b"xx"], MODES[mode]))  # refused whole, "a" not sent
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert exc.count == 0
    exc = _bounded(lambda: _send(other, b"xx", MODES[mode]))
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert queue.stats().count == 0


@pytest.mark.usefixtures("trusted_for_an_hour")
@pytest.mark.parametrize("mode", list(MODES))
def test_a_send_that_finds_no_room_reads_max_size_anew(queue: SysVMQ, mode: str) -> None:
    # Another process lowers max_size after this one read it: a message that can never fit must still be
    # MessageTooLarge, never QueueFull, and a blocking send must not wait for ever.
    assert queue.send_many([b"a"]) == 1  # the reading: max_size 16384
    queue.receive()
    run_python(LOWER, str(queue.id), "100")
    exc = _bounded(lambda: _send(queue, b"x" * 101, MODES[mode]))
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert "max_size (100)" in str(exc)
    assert exc.count == 0
    assert queue.stats().count == 0


@pytest.mark.usefixtures("trusted_for_an_hour")
@pytest.mark.parametrize("mode", list(MODES))
def test_a_batch_checked_on_a_stale_reading_says_what_it_queued(queue: SysVMQ, mode: str) -> None:
    # The batch passes its check on the old reading, sends what fits, then finds the truth: count says what went.
    assert queue.send_many([b"a"]) == 1
    queue.receive()
    run_python(LOWER, str(queue.id), "100")
    exc = _bounded(lambda: _send_many(queue, [b"a", b"x" * 101, b"b"], MODES[mode]))
    assert isinstance(exc, sysvmq.MessageTooLarge), exc
    assert "messages[1] of 101 bytes" in str(exc)
    assert exc.count == 1
    assert queue.stats().count == 1


@pytest.fixture(params=["timer", "poll"])
def wait(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each way a call can wait (sysvmq.timed_wait): with the timer, and polling as without it."""
    if request.param == "poll":
        sysvmq.set_timer_signal(None)
    try:
        yield sysvmq.timed_wait
    finally:
        sysvmq.set_timer_signal(sysvmq._wait.default_timer_signal())


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("mode", ["timeout=1", "blocking"])
def test_max_size_lowered_while_a_send_waits_ends_it_as_too_large(
    queue: SysVMQ, mode: str, many: bool, wait: str
) -> None:
    # The send checked its message against max_size 1000 and began to wait for room; then max_size went
    # below the message. It can never fit: MessageTooLarge (after at most a slice of the wait), not a
    # wait for ever, nor QueueFull at the deadline, whether it waits with the timer or polls. Lowered
    # to 1, the queue also holds what it holds.
    queue.update(max_size=1000)
    queue.send(b"f" * 1000)
    kwargs = MODES[mode]
    box: List[BaseException] = []

    def send() -> None:
        try:
            if many:
                queue.send_many([b"x" * 800, b"y"], **kwargs)
            else:
                queue.send(b"x" * 800, **kwargs)
        except BaseException as exc:
            box.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    wait_blocked(sender.native_id, where="msg" if wait == "timer" else SLEEPING)
    queue.update(max_size=500)
    sender.join(10)
    assert not sender.is_alive(), "the send waited for room its message can never have"
    assert isinstance(box[0], sysvmq.MessageTooLarge), box
    assert "max_size (500)" in str(box[0])
    assert getattr(box[0], "count", None) == 0
    assert queue.stats().count == 1
