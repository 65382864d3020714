"""The installed ``sysvmq`` command, run for real in subprocesses."""

import base64
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
from typing import Any, List, Optional

import pytest
from support import CREATED, exists, ipcs_rows, register, remove, session_processes, wait_blocked, wait_until

import sysvmq
from sysvmq import SysVMQ

COMMAND = pathlib.Path(sys.executable).parent / "sysvmq"


def sysvmq_cmd(
    *args: str, input: Optional[bytes] = None, timeout: float = 60, **kw: Any
) -> "subprocess.CompletedProcess[bytes]":
    return subprocess.run([str(COMMAND), *args], input=input, capture_output=True, timeout=timeout, **kw)


def ok(*args: str, input: Optional[bytes] = None) -> str:
    proc = sysvmq_cmd(*args, input=input)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return proc.stdout.decode()


def fails(status: int, *args: str, input: Optional[bytes] = None) -> str:
    proc = sysvmq_cmd(*args, input=input)
    assert proc.returncode == status, (proc.returncode, proc.stderr.decode())
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert err.count("\n") == 1, err  # one line
    return err


@pytest.fixture
def key(free_key: int) -> str:
    return f"{free_key:#x}"


def test_the_command_is_installed() -> None:
    assert COMMAND.is_file(), f"no sysvmq command beside {sys.executable}"


def test_version() -> None:
    assert ok("--version").strip() == f"sysvmq {sysvmq.__version__}"


@pytest.mark.parametrize(
    "command",
    [[], ["ls"], ["stat"], ["send"], ["recv"], ["rm"], ["create"], ["update"], ["limits"], ["bench"], ["demo"]],
)
def test_help_reads_well(command: List[str]) -> None:
    out = ok(*command, "--help")
    assert out.startswith("usage: sysvmq")
    assert "exit status" in out


def test_usage_error_exits_2() -> None:
    proc = sysvmq_cmd("recv")
    assert proc.returncode == 2
    assert b"QUEUE" in proc.stderr


def test_create_send_recv_stat_update_rm(key: str) -> None:
    out = ok("create", key, "--mode", "0o640", "--max-size", "4096")
    msqid = int(out.split()[2])
    CREATED.add(msqid)
    assert out == f"created queue {msqid} (key {int(key, 16):#010x})\n"
    assert ok("create", key) == f"exists: queue {msqid} (key {int(key, 16):#010x})\n"
    fails(1, "create", key, "--exclusive")
    ok("send", key, "héllo", "--type", "3")
    ok("send", f"id:{msqid}", input=b"line one\nline two\n")
    st = json.loads(ok("stat", key, "--json"))
    assert (st["id"], st["messages"], st["bytes"], st["max_bytes"], st["mode"]) == (msqid, 3, 6 + 16, 4096, "0o640")
    assert ok("recv", key, "--type", "3") == "héllo\n"
    assert ok("recv", key, "--count", "2") == "line one\nline two\n"
    ok("update", key, "--mode", "600", "--max-size", "8000")
    st = json.loads(ok("stat", key, "--json"))
    assert (st["mode"], st["max_bytes"], st["messages"]) == ("0o600", 8000, 0)
    assert ok("rm", key) == f"removed queue {msqid} (key {int(key, 16):#010x})\n"
    fails(3, "stat", key)


def test_stat_text_names_every_field(queue: SysVMQ) -> None:
    out = ok("stat", f"id:{queue.id}")
    for field in ("key", "id", "owner", "mode", "messages", "bytes", "max_bytes", "last_send_time"):
        assert any(line.split()[0] == field for line in out.splitlines()), field


def test_recv_json_is_parsed_back(queue: SysVMQ) -> None:
    queue.send(b"\x00\xffbin", 7)
    queue.send("text", 2)
    lines = ok("recv", f"id:{queue.id}", "--all", "--json").splitlines()
    got = [json.loads(line) for line in lines]
    assert got == [
        {"type": 7, "size": 5, "data": base64.b64encode(b"\x00\xffbin").decode()},
        {"type": 2, "size": 4, "data": base64.b64encode(b"text").decode()},
    ]


def test_recv_escapes_what_is_not_utf8(queue: SysVMQ) -> None:
    queue.send(b"ok \xff\xfe")
    assert ok("recv", f"id:{queue.id}") == "ok \\xff\\xfe\n"


def test_binary_send_is_one_message(queue: SysVMQ) -> None:
    ok("send", f"id:{queue.id}", "--binary", input=b"a\nb\x00c\n")
    assert queue.receive_message() == (b"a\nb\x00c\n", 1)
    assert queue.stats().count == 0


def test_recv_all_on_empty_prints_nothing(queue: SysVMQ) -> None:
    assert ok("recv", f"id:{queue.id}", "--all") == ""


def test_peek_leaves_messages(queue: SysVMQ) -> None:
    queue.send_many([b"one", b"two"])
    assert ok("recv", f"id:{queue.id}", "--peek", "--all") == "one\ntwo\n"
    assert ok("recv", f"id:{queue.id}", "--peek", "--count", "1") == "one\n"
    assert queue.stats().count == 2


@pytest.mark.parametrize("how", [["--nowait"], ["--timeout", "0.05"]])
def test_empty_exits_5(queue: SysVMQ, how: List[str]) -> None:
    err = fails(5, "recv", f"id:{queue.id}", *how)
    assert f"queue {queue.id}" in err


def test_full_exits_5(queue: SysVMQ) -> None:
    queue.update(max_size=10)
    queue.send(b"x" * 10)
    fails(5, "send", f"id:{queue.id}", "more", "--nowait")
    fails(5, "send", f"id:{queue.id}", "more", "--timeout", "0.05")
    assert queue.stats().count == 1


def test_not_found_exits_3(queue: SysVMQ, tmp_path: pathlib.Path, free_key: int) -> None:
    msqid = queue.id
    queue.destroy()
    fails(3, "stat", f"id:{msqid}")
    fails(3, "recv", f"{free_key:#x}", "--nowait")
    fails(3, "send", str(tmp_path / "missing"), "x")
    fails(3, "rm", f"id:{msqid}")


# The interpreter lives under /root, which uid 65534 may not enter: the child
# loads the command's code as root, then drops to 65534 and runs it.
AS_NOBODY = """
import os, sys
from sysvmq._cli import main, parser
parser().format_help()  # argparse imports locale and shutil lazily: load them while we may
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_permission_denied_exits_4(queue: SysVMQ) -> None:
    queue.send(b"root's")
    for args in (["recv", f"id:{queue.id}", "--nowait"], ["send", f"id:{queue.id}", "x"], ["rm", f"id:{queue.id}"]):
        proc = subprocess.run([sys.executable, "-c", AS_NOBODY, *args], capture_output=True, timeout=60)
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.decode().count("\n") == 1
        assert b"Traceback" not in proc.stderr
        assert f"queue {queue.id}".encode() in proc.stderr
    assert queue.peek() == (b"root's", 1)


def test_path_queue_is_keyed_with_ftok(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "app.conf"
    path.write_text("")
    q = register(SysVMQ.create(sysvmq.ftok(path, 9)))
    try:
        ok("send", str(path), "via path", "--proj", "9")
        assert q.receive() == b"via path"
    finally:
        remove(q)


def test_ls_agrees_with_ipcs(make_queue) -> None:  # type: ignore[no-untyped-def]
    a = make_queue(mode=0o640)
    a.send(b"abc")
    b = make_queue()
    mine = {a.id, b.id}  # other programs' queues may come and go meanwhile: compare ours only
    listed = json.loads(ok("ls", "--json"))
    ours = {
        q["id"]: (int(q["key"], 16), q["owner"], int(q["mode"], 8), q["bytes"], q["messages"])
        for q in listed
        if q["id"] in mine
    }
    assert ours == ipcs_rows(mine)
    assert ours[a.id] == (0, "root" if os.geteuid() == 0 else ours[a.id][1], 0o640, 3, 1)
    table = ok("ls").splitlines()
    assert table[0].split()[:4] == ["KEY", "ID", "OWNER", "MODE"]
    assert any(line.split()[1] == str(a.id) and line.split()[3] == "640" for line in table[1:])


def test_limits(tmp_path: pathlib.Path) -> None:
    doc = json.loads(ok("limits", "--json"))
    for name in ("msgmax", "msgmnb", "msgmni"):
        assert doc["limits"][name] == int(pathlib.Path(f"/proc/sys/kernel/{name}").read_text())
        assert doc["sysctls"][name] == f"kernel.{name}"
    assert set(doc["usage"]) == {"queues", "messages", "bytes"}
    text = ok("limits")
    assert "kernel.msgmax" in text and "in use now" in text


def test_send_in_one_process_recv_in_another(queue: SysVMQ) -> None:
    receiver = subprocess.Popen(
        [str(COMMAND), "recv", f"id:{queue.id}", "--count", "3", "--type", "5"], stdout=subprocess.PIPE
    )
    try:
        wait_blocked(receiver.pid, receiver.pid)
        ok("send", f"id:{queue.id}", "--type", "5", input=b"a\nb\nc\n")
        out, _ = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    assert receiver.returncode == 0
    assert out == b"a\nb\nc\n"


def test_ctrl_c_on_a_blocked_recv_exits_130_and_leaves_the_queue(queue: SysVMQ) -> None:
    queue.send(b"not yours", 1)
    receiver = subprocess.Popen(
        [str(COMMAND), "recv", f"id:{queue.id}", "--type", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_blocked(receiver.pid, receiver.pid)
        receiver.send_signal(signal.SIGINT)
        out, err = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    assert receiver.returncode == 130
    assert b"Traceback" not in err
    assert out == b""
    assert queue.peek() == (b"not yours", 1)
    assert queue.stats().count == 1


# -- bench and demo leak nothing, whatever ends them --------------------------------------


def start(*args: str, **kw: Any) -> "subprocess.Popen[bytes]":
    """The command in a session of its own: its sid is its pid, and a signal to its group reaches its workers."""
    return subprocess.Popen(
        [str(COMMAND), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw
    )


def bench_queue(bench: "subprocess.Popen[bytes]") -> int:
    """The queue bench -v says it made (registered at once), once its producers are sending."""
    assert bench.stderr is not None
    line = bench.stderr.readline().decode()
    found = re.fullmatch(r"sysvmq bench: private queue (\d+)\n", line)
    assert found, line
    msqid = int(found.group(1))
    CREATED.add(msqid)
    wait_until(lambda: not exists(msqid) or SysVMQ.attach(msqid).stats().last_send_pid != 0, "bench sends")
    return msqid


def ends_clean(proc: "subprocess.Popen[bytes]", msqid: int) -> "tuple[bytes, bytes]":
    """Wait for the command; then no process of its session is left, and its queue is gone."""
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    wait_until(lambda: not session_processes(proc.pid), "every process of the command ended")
    assert not exists(msqid)
    assert b"Traceback" not in err
    return out, err


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE]


@pytest.mark.parametrize("to", ["process", "group"])
@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_ends_bench_and_removes_its_queue(signum: int, to: str) -> None:
    bench = start("bench", "-v", "--messages", "100000000")
    msqid = bench_queue(bench)
    if to == "group":  # as Ctrl-C in a terminal, and timeout(1), do
        os.killpg(bench.pid, signum)
    else:  # as kill(1) does: the workers hear nothing
        bench.send_signal(signum)
    _, err = ends_clean(bench, msqid)
    assert bench.returncode == 128 + signum, err
    assert err.decode().splitlines()[-1] == f"sysvmq bench: removed queue {msqid}"


def test_ctrl_c_on_bench_exits_130_and_removes_its_queue() -> None:
    bench = start("bench", "-v", "--messages", "100000000")
    msqid = bench_queue(bench)
    os.killpg(bench.pid, signal.SIGINT)
    ends_clean(bench, msqid)
    assert bench.returncode == 130


def test_bench_killed_outright_leaves_nothing() -> None:
    bench = start("bench", "-v", "--messages", "100000000")
    msqid = bench_queue(bench)
    bench.kill()  # SIGKILL: no cleanup of its own; its workers die with it and remove the queue
    ends_clean(bench, msqid)


def children(pid: int) -> List[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_worker_that_dies_ends_bench_with_one_line(signum: int) -> None:
    bench = start("bench", "-v", "--messages", "100000000")
    msqid = bench_queue(bench)
    os.kill(children(bench.pid)[0], signum)
    _, err = ends_clean(bench, msqid)
    assert bench.returncode == 1
    said = [line for line in err.decode().splitlines() if not re.search(r"(private|removed) queue \d+$", line)]
    assert len(said) == 1 and f"was killed by {signal.Signals(signum).name}" in said[0], said


def test_bench_reports_a_failure_as_itself_not_as_its_cleanup() -> None:
    bench = start("bench", "-v", "--messages", "100000000")
    msqid = bench_queue(bench)
    SysVMQ.attach(msqid).destroy()  # bench's own queue (it said so), removed under it
    _, err = ends_clean(bench, msqid)
    assert bench.returncode != 0
    said = [line for line in err.decode().splitlines() if not line.startswith("sysvmq bench: private queue")]
    assert len(said) == 1, said  # the failure, and not "removed queue": bench did not remove it
    assert re.search(r"no longer exists|Identifier removed", said[0]) and "IPC_RMID" not in said[0], said


def demo_queue(demo: "subprocess.Popen[bytes]") -> int:
    assert demo.stdout is not None
    line = demo.stdout.readline().decode()
    found = re.match(r"created private queue id (\d+);", line)
    assert found, line
    CREATED.add(int(found.group(1)))
    return int(found.group(1))


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_ends_demo_and_removes_its_queue(signum: int) -> None:
    demo = start("demo", "--messages", "100000000")
    msqid = demo_queue(demo)
    assert demo.stdout is not None
    while True:  # until the worker is up and the queue busy
        line = demo.stdout.readline()
        assert line, "demo ended early"
        if b"one-way stream" in line:
            break
    os.killpg(demo.pid, signum)
    _, err = ends_clean(demo, msqid)
    assert demo.returncode == 128 + signum
    assert err == b""  # no worker traceback


def test_ctrl_c_while_demo_starts_its_worker_prints_nothing() -> None:
    demo = start("demo", "--messages", "1000")
    msqid = demo_queue(demo)  # the worker starts just after this line
    os.killpg(demo.pid, signal.SIGINT)
    _, err = ends_clean(demo, msqid)
    assert demo.returncode in (0, 130)  # 0 if it had finished already
    assert err == b""


def test_demo_into_head_leaves_nothing() -> None:
    script = '"$0" demo --messages 100000000 | head -1; echo "demo exited ${PIPESTATUS[0]}" >&2'
    proc = subprocess.Popen(
        ["bash", "-c", script, str(COMMAND)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = proc.communicate(timeout=60)
    msqid = int(re.match(rb"created private queue id (\d+);", out).group(1))  # type: ignore[union-attr]
    CREATED.add(msqid)
    assert err == b"demo exited 141\n"
    wait_until(lambda: not session_processes(proc.pid), "every process of the pipeline ended")
    assert not exists(msqid)


def test_bench_json() -> None:
    bench = start("bench", "-v", "--messages", "3000", "--size", "4", "--producers", "2", "--consumers", "2", "--json")
    assert bench.stderr is not None
    msqid = int(bench.stderr.readline().split()[-1])
    CREATED.add(msqid)
    out, _ = ends_clean(bench, msqid)
    assert bench.returncode == 0
    doc = json.loads(out)
    assert doc["throughput"]["messages"] == 3000
    assert doc["throughput"]["messages_per_second"] > 0
    lat = doc["latency"]
    assert lat["message_bytes"] == 8  # padded to carry the timestamp
    assert 0 < lat["p50_us"] <= lat["p99_us"] <= lat["p999_us"] <= lat["max_us"]


def test_bench_text_reads_well() -> None:
    out = ok("bench", "--messages", "2000", "--rate", "2000")
    assert "messages/s" in out and "median" in out and "p99" in out
    assert "2,000/s" in out


def test_bench_of_one_message_speaks_of_one_and_measures_one() -> None:
    out = ok("bench", "--messages", "1")
    assert "  1 message in" in out and not re.search(r"(?<![\d,])1 messages", out), out
    assert re.search(r"latency +1 message sent", out), out
    doc = json.loads(ok("bench", "--messages", "1", "--json"))
    assert (doc["throughput"]["messages"], doc["latency"]["messages"]) == (1, 1)


def test_bench_above_its_throughput_does_not_claim_an_empty_queue() -> None:
    out = ok("bench", "--messages", "2000", "--rate", str(2**31 - 1))
    assert "nearly empty" not in out
    assert "above the measured throughput" in out


def test_demo_runs_from_the_command() -> None:
    out = ok("demo", "--messages", "1000", "--size", "16")
    assert "the worker received 1,000 messages, 16,000 bytes" in out
    assert "removed queue" in out


def test_bench_shows_progress_only_on_a_terminal() -> None:
    import pty

    main, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [str(COMMAND), "bench", "--messages", "200000", "--size", "16"],
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO once the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0
    assert b"\r" in shown and b"of 200,000 messages" in shown  # one line, rewritten in place
    assert b"\r" not in proc.stdout
    piped = sysvmq_cmd("bench", "--messages", "20000")
    assert piped.returncode == 0 and piped.stderr == b""  # no progress when stderr is not a terminal


def test_bench_size_above_msgmax_is_one_line() -> None:
    limit = sysvmq.limits().msgmax
    err = fails(2, "bench", "--size", str(limit + 1))
    assert "--size" in err and f"kernel.msgmax ({limit})" in err
