"""Permissions, from a child that drops to uid/gid 65534 (root bypasses IPC permission checks)."""

import json
import os
from typing import Dict

import pytest
from support import run_python

import sysvmq
from sysvmq import SysVMQ

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")

# The child imports sysvmq first (as a real program would), then drops its
# supplementary groups, gid and uid, and reports what each call raised.
CHILD = """
import json, os, sys
import sysvmq

msqid, key = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)

def attempt(call):
    try:
        call()
    except sysvmq.SysVMQError as exc:
        return {"error": type(exc).__name__, "errno": exc.errno, "message": str(exc)}
    return {"error": None}

results = {}
q = None
def attach():
    global q
    q = sysvmq.SysVMQ.attach(msqid)
results["attach"] = attempt(attach)
results["attached_key"] = q.key if q is not None else None
results["open"] = attempt(lambda: sysvmq.SysVMQ.open(key))
results["open_with_mode"] = attempt(lambda: sysvmq.SysVMQ(key, flags=sysvmq.IPC_CREAT | 0o666))
results["send"] = attempt(lambda: q.send(b"from nobody"))
results["receive"] = attempt(lambda: q.receive(block=False))
results["receive_into"] = attempt(lambda: q.receive_into(bytearray(64), block=False))
results["peek"] = attempt(lambda: q.peek())
results["stats"] = attempt(q.stats)
results["update"] = attempt(lambda: q.update(mode=0o666))
results["destroy"] = attempt(q.destroy)
results["listed"] = any(st.id == msqid for st in sysvmq.queues())
print(json.dumps(results))
"""


def _as_nobody(q: SysVMQ) -> Dict[str, object]:
    out = run_python(CHILD, str(q.id), str(q.key)).stdout
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.fixture
def keyed(free_key: int) -> SysVMQ:
    from support import register

    return register(SysVMQ.create(free_key, mode=0o600, exclusive=True))


def test_another_user_opens_but_may_not_use(keyed: SysVMQ) -> None:
    keyed.send(b"root's", 4)
    before = keyed.stats()
    r = _as_nobody(keyed)
    assert r["attach"] == {"error": None}
    assert r["attached_key"] == keyed.key
    assert r["open"] == {"error": None}
    assert r["open_with_mode"] == {"error": None}
    assert r["listed"] is True
    for op in ("send", "receive", "receive_into", "peek", "stats", "update", "destroy"):
        result = r[op]
        assert isinstance(result, dict)
        assert result["error"] == "QueuePermissionError", (op, result)
        assert result["errno"] in (1, 13), (op, result)  # EPERM or EACCES
        assert f"queue {keyed.id}" in result["message"], (op, result)
    after = keyed.stats()
    assert (after.count, after.size, after.mode) == (before.count, before.size, before.mode)
    assert keyed.peek() == (b"root's", 4)


def test_write_only_group_lets_a_producer_send_but_not_receive(keyed: SysVMQ) -> None:
    keyed.update(gid=NOBODY, mode=0o620)
    keyed.send(b"root's", 4)
    r = _as_nobody(keyed)
    assert r["send"] == {"error": None}
    for op in ("receive", "receive_into", "peek", "stats"):
        assert r[op]["error"] == "QueuePermissionError", op  # type: ignore[index]
    assert [keyed.receive_message() for _ in range(2)] == [(b"root's", 4), (b"from nobody", 1)]


def test_producer_blocked_by_full_queue_it_cannot_stat(keyed: SysVMQ) -> None:
    # A write-only producer cannot read max_size; it must still send (and wait) rather than fail.
    keyed.update(gid=NOBODY, mode=0o620, max_size=8)
    keyed.send(b"12345678")
    code = CHILD.split("results = {}")[0] + (
        "q = sysvmq.SysVMQ.attach(msqid)\n"
        "try:\n"
        "    q.send(b'x', timeout=0.05)\n"
        "except sysvmq.QueueFull as exc:\n"
        "    print('full', exc.errno)\n"
    )
    assert run_python(code, str(keyed.id), str(keyed.key)).stdout.split() == ["full", "11"]
    assert keyed.stats().count == 1


def test_owner_change_then_owner_may_use(keyed: SysVMQ) -> None:
    keyed.update(uid=NOBODY)
    r = _as_nobody(keyed)
    assert r["send"] == {"error": None}
    assert r["stats"] == {"error": None}
    assert r["destroy"] == {"error": None}
    with pytest.raises(sysvmq.QueueRemoved):
        keyed.stats()
