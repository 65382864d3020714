"""stats, update, destroy, and the module functions limits, usage, queues, ftok."""

import errno
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
from support import ipcs_rows, register, run_python

import sysvmq
from sysvmq import SysVMQ

PROC = pathlib.Path("/proc/sys/kernel")


def test_stats_snapshot(queue: SysVMQ) -> None:
    before = int(time.time())
    empty = queue.stats()
    assert (empty.id, empty.key, empty.count, empty.size) == (queue.id, 0, 0, 0)
    assert (empty.last_send_time, empty.last_receive_time) == (0, 0)
    assert (empty.last_send_pid, empty.last_receive_pid) == (0, 0)
    assert empty.max_size == sysvmq.limits().msgmnb
    assert (empty.uid, empty.gid, empty.cuid, empty.cgid) == (os.geteuid(), os.getegid(), os.geteuid(), os.getegid())
    assert empty.mode == 0o600
    assert empty.last_change_time >= before - 1

    queue.send(b"12345", 3)
    queue.send(b"678", 4)
    sent = queue.stats()
    assert (sent.count, sent.size) == (2, 8)
    assert sent.last_send_pid == os.getpid()
    assert sent.last_send_time >= before
    queue.receive()
    got = queue.stats()
    assert (got.count, got.size) == (1, 3)
    assert got.last_receive_pid == os.getpid()
    assert got.last_receive_time >= before


def test_stats_is_frozen(queue: SysVMQ) -> None:
    st = queue.stats()
    with pytest.raises(AttributeError):
        st.count = 5  # type: ignore[misc]


def test_update_max_size_and_mode(queue: SysVMQ) -> None:
    queue.update(max_size=4096, mode=0o640)
    st = queue.stats()
    assert (st.max_size, st.mode) == (4096, 0o640)
    queue.update(mode=0o600)
    assert queue.stats().max_size == 4096  # read-modify-write keeps the rest


def test_update_owner(queue: SysVMQ) -> None:
    queue.update(uid=65534, gid=65534)
    st = queue.stats()
    assert (st.uid, st.gid) == (65534, 65534)
    assert (st.cuid, st.cgid) == (os.geteuid(), os.getegid())


def test_update_max_size_limits_what_fits(queue: SysVMQ) -> None:
    queue.update(max_size=10)
    queue.send(b"x" * 10)
    with pytest.raises(sysvmq.QueueFull):
        queue.send(b"y", block=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "at least one"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": -5}, "max_size"),
        ({"max_size": 2**64}, "max_size"),
        ({"mode": 0o1000}, "mode"),
        ({"uid": -1}, "uid"),
        ({"gid": 2**32}, "gid"),
    ],
)
def test_update_bad_values_change_nothing(queue: SysVMQ, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    before = queue.stats()
    with pytest.raises(ValueError, match=match):
        queue.update(**kwargs)
    assert queue.stats() == before


def test_update_type_error(queue: SysVMQ) -> None:
    with pytest.raises(TypeError, match="max_size must be an int"):
        queue.update(max_size="10")  # type: ignore[arg-type]


OWNER = """
import json, os, sys
import sysvmq

msqid = int(sys.argv[1])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
q = sysvmq.SysVMQ.attach(msqid)
out = {}
try:
    q.stats()
except sysvmq.QueuePermissionError:
    out["could_read"] = False
try:
    q.update(mode=0o600)
    out["stats_after"] = q.stats().mode
except sysvmq.SysVMQError as exc:
    out["error"] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
@pytest.mark.parametrize("mode", [0o200, 0])
def test_an_owner_who_may_not_read_the_queue_can_still_change_it(queue: SysVMQ, mode: int) -> None:
    # IPC_SET needs the owner, not read permission; update() learns the rest with MSG_STAT_ANY.
    queue.update(max_size=4000, uid=65534, gid=65534, mode=mode)
    result = json.loads(run_python(OWNER, str(queue.id)).stdout)
    assert result == {"could_read": False, "stats_after": 0o600}
    assert queue.stats().max_size == 4000


# In a private IPC namespace of its own (unshare --ipc), where lowering kernel.msgmnb touches no
# other program: a queue's max_size above msgmnb, written back by an update of its mode alone.
ABOVE_MSGMNB = """
import json, os, sys
import sysvmq

q = sysvmq.SysVMQ.private()  # max_size: the namespace's msgmnb, 16384
q.update(uid=65534, gid=65534)
with open("/proc/sys/kernel/msgmnb", "w") as f:
    f.write("8192")
pid = os.fork()
if pid == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)  # and so no CAP_SYS_RESOURCE
    try:
        q.update(mode=0o640)
        print(json.dumps(None), flush=True)
    except sysvmq.SysVMQError as exc:
        print(json.dumps([type(exc).__name__, exc.errno, str(exc)]), flush=True)
    os._exit(0)  # no exit handlers, no flush: hence flush=True above
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a private IPC namespace needs root")
def test_update_says_when_the_current_max_size_above_msgmnb_is_what_is_refused() -> None:
    proc = subprocess.run(
        ["unshare", "--ipc", sys.executable, "-c", ABOVE_MSGMNB], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no private IPC namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    name, err, message = json.loads(proc.stdout)
    assert (name, err) == ("QueuePermissionError", errno.EPERM)
    assert "max_size (16384) is above kernel.msgmnb (8192)" in message
    assert "pass max_size=8192 or less" in message


def test_destroy_removes_and_waiters_elsewhere_see_removed(queue: SysVMQ) -> None:
    queue.send(b"lost")
    queue.destroy()
    with pytest.raises(sysvmq.QueueRemoved) as info:
        queue.stats()
    assert info.value.errno == 43  # EIDRM
    for call in (lambda: queue.send(b"x"), lambda: queue.receive(block=False), queue.destroy, queue.peek):
        with pytest.raises(sysvmq.QueueRemoved, match=str(queue.id)):
            call()


def test_limits_match_proc() -> None:
    lim = sysvmq.limits()
    for name in ("msgmax", "msgmnb", "msgmni"):
        assert getattr(lim, name) == int((PROC / name).read_text()), name
    assert lim.msgseg is not None and lim.msgseg > 0


def test_usage_counts_this_queue(queue: SysVMQ) -> None:
    before = sysvmq.usage()
    queue.send(b"x" * 100)
    after = sysvmq.usage()
    # Other processes may use queues too; our own message must show.
    assert after.queues >= 1
    assert after.messages >= 1
    assert after.bytes >= 100
    assert before.queues >= 1


def test_queues_agree_with_ipcs(make_queue, free_key: int) -> None:  # type: ignore[no-untyped-def]
    a = make_queue(mode=0o640)
    a.send(b"abc")
    b = register(SysVMQ.create(free_key, mode=0o666, exclusive=True))
    ours = {a.id, b.id}  # other programs' queues may come and go meanwhile: compare ours only
    listed = {st.id: (st.key, st.mode, st.size, st.count) for st in sysvmq.queues() if st.id in ours}
    assert listed[a.id] == (0, 0o640, 3, 1)
    assert listed[b.id] == (free_key, 0o666, 0, 0)
    assert listed == {msqid: (key, mode, size, count) for msqid, (key, _, mode, size, count) in ipcs_rows(ours).items()}


def test_ftok_matches_the_c_formula(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keyfile"
    path.write_bytes(b"")
    st = os.stat(path)
    expected = ((42 & 0xFF) << 24) | ((st.st_dev & 0xFF) << 16) | (st.st_ino & 0xFFFF)
    assert sysvmq.ftok(path, 42) == expected
    assert sysvmq.ftok(str(path), 42) == sysvmq.ftok(os.fsencode(path), 42) == expected
    assert sysvmq.ftok(path) == (expected & 0x00FFFFFF) | (1 << 24)


def test_ftok_missing_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        sysvmq.ftok(tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")


@pytest.mark.parametrize("proj_id", [0, 256, -1])
def test_ftok_proj_id_range(tmp_path: pathlib.Path, proj_id: int) -> None:
    with pytest.raises(ValueError, match=r"proj_id must be 1\.\.255"):
        sysvmq.ftok(tmp_path, proj_id)


def test_ftok_key_opens_a_queue(tmp_path: pathlib.Path) -> None:
    key = sysvmq.ftok(tmp_path, 7)
    try:
        q = register(SysVMQ.create(key, exclusive=True))  # never another program's queue
    except sysvmq.QueueExists:
        pytest.skip(f"another program has a queue with this file's key {key:#010x}")
    try:
        assert SysVMQ.open(sysvmq.ftok(tmp_path, 7)).id == q.id
    finally:
        q.destroy()
