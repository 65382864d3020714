"""The installed ``sysvmq`` command, run for real in subprocesses.

Every queue a test touches is one it made (by the id it got back, or by a key
it took free and created exclusively); bench and demo name their queue (on
standard error with -v, and in demo's first line), so a test knows it is theirs.
"""

import argparse
import base64
import contextlib
import inspect
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import (
    SLEEPING,
    exists,
    ipcs_rows,
    note_created,
    register,
    remove,
    run_python,
    session_processes,
    wait_blocked,
    wait_until,
)

import sysvmq
from sysvmq import SysVMQ
from sysvmq._cli import escape, parser

COMMAND = pathlib.Path(sys.executable).parent / "sysvmq"
MSGMAX = sysvmq.limits().msgmax
MSGMNB = sysvmq.limits().msgmnb


def sysvmq_cmd(
    *args: Any, input: Optional[bytes] = None, timeout: float = 60, **kw: Any
) -> "subprocess.CompletedProcess[bytes]":
    return subprocess.run([str(COMMAND), *args], input=input, capture_output=True, timeout=timeout, **kw)


def ok(*args: Any, input: Optional[bytes] = None, **kw: Any) -> str:
    proc = sysvmq_cmd(*args, input=input, **kw)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return proc.stdout.decode()


def one_line(err: bytes) -> str:
    text = err.decode()
    assert "Traceback" not in text
    assert text.count("\n") == 1, text  # one line
    return text


def fails(status: int, *args: Any, input: Optional[bytes] = None, **kw: Any) -> str:
    proc = sysvmq_cmd(*args, input=input, **kw)
    assert proc.returncode == status, (proc.returncode, proc.stderr.decode())
    return one_line(proc.stderr)


def created(out: str) -> int:
    """The id `sysvmq create` printed, registered at once so that the suite removes it whatever happens."""
    found = re.match(r"created (?:private )?queue (\d+)", out)
    assert found, out
    msqid = int(found.group(1))
    note_created(msqid)
    return msqid


def unescape(line: bytes) -> bytes:
    """The reverse of recv's escapes: what a reader of its output can rebuild."""
    out = bytearray()
    text = line.decode("utf-8")
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        kind = text[i + 1]
        if kind in "\\ntr":
            out += {"\\": b"\\", "n": b"\n", "t": b"\t", "r": b"\r"}[kind]
            i += 2
        elif kind == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            width = 4 if kind == "u" else 8
            out += chr(int(text[i + 2 : i + 2 + width], 16)).encode()
            i += 2 + width
    return bytes(out)


@pytest.fixture
def key(free_key: int) -> str:
    return f"{free_key:#x}"


def test_the_command_is_installed() -> None:
    assert COMMAND.is_file(), f"no sysvmq command beside {sys.executable}"


def test_version() -> None:
    assert ok("--version").strip() == f"sysvmq {sysvmq.__version__}"


COMMANDS = ["ls", "stat", "send", "recv", "rm", "create", "update", "key", "limits", "bench", "demo"]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_reads_well(command: List[str]) -> None:
    out = ok(*command, "--help")
    assert out.startswith("usage: sysvmq")
    assert "exit status" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_describes_every_option_and_its_default(command: str) -> None:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    c = sub.choices[command]
    out = ok(command, "--help")
    for action in c._actions:
        if not action.option_strings or action.help == "show this help message and exit":
            continue
        assert action.help, f"{command} {action.option_strings} has no description"
        assert action.option_strings[-1] in out
        if action.default not in (None, False):
            assert "default" in action.help, f"{command} {action.option_strings}: the default is not said"
    assert len(out.split("\n\n")[1]) > 0  # a description under the usage


def test_usage_error_exits_2() -> None:
    proc = sysvmq_cmd("recv")
    assert proc.returncode == 2
    assert b"QUEUE" in proc.stderr


def test_create_send_recv_stat_update_rm(key: str) -> None:
    out = ok("create", key, "--exclusive", "--mode", "0o640", "--max-size", "4096")
    msqid = created(out)
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

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")


def as_nobody(*args: str) -> "subprocess.CompletedProcess[bytes]":
    return subprocess.run([sys.executable, "-c", AS_NOBODY, *args], capture_output=True, timeout=60)


@needs_root
def test_permission_denied_exits_4(queue: SysVMQ) -> None:
    queue.send(b"root's")
    for args in (["recv", f"id:{queue.id}", "--nowait"], ["send", f"id:{queue.id}", "x"], ["rm", f"id:{queue.id}"]):
        proc = as_nobody(*args)
        assert proc.returncode == 4, proc.stderr
        assert f"queue {queue.id}" in one_line(proc.stderr)
    assert queue.peek() == (b"root's", 1)


@needs_root
def test_stat_shows_a_queue_this_user_may_not_read_as_ls_does(make_queue: Callable[..., SysVMQ]) -> None:
    q = make_queue(mode=0o600)
    q.send(b"root's")
    listed = as_nobody("ls", "--json")
    assert listed.returncode == 0, listed.stderr
    seen = [row for row in json.loads(listed.stdout) if row["id"] == q.id]
    if not seen:
        pytest.skip("this kernel has no MSG_STAT_ANY: ls does not list it either")
    proc = as_nobody("stat", f"id:{q.id}", "--json")
    assert (proc.returncode, proc.stderr) == (0, b"")
    shown = json.loads(proc.stdout)
    assert shown == seen[0]
    assert (shown["messages"], shown["mode"]) == (1, "0o600")
    assert "max_bytes" in as_nobody("stat", f"id:{q.id}").stdout.decode()


def ftok_queue(tmp_path: pathlib.Path, proj: int) -> "tuple[pathlib.Path, SysVMQ]":
    """A file and a new queue with its ftok key; another file if another program has that key already."""
    for n in range(100):
        path = tmp_path / f"app{n}.conf"
        path.write_text("")
        try:
            return path, register(SysVMQ.create(sysvmq.ftok(path, proj), exclusive=True))
        except sysvmq.QueueExists:
            continue  # an ftok key is only 32 bits of inode and device: not ours to touch
    raise AssertionError("every ftok key tried was taken")


def test_path_queue_is_keyed_with_ftok(tmp_path: pathlib.Path) -> None:
    path, q = ftok_queue(tmp_path, 9)
    try:
        ok("send", str(path), "via path", "--proj", "9")
        assert q.receive() == b"via path"
        assert ok("key", str(path), "--proj", "9") == f"{q.key:#010x}\n"
    finally:
        remove(q)


def test_key_prints_the_ftok_key(tmp_path: pathlib.Path) -> None:
    assert ok("key", str(tmp_path)) == f"{sysvmq.ftok(tmp_path):#010x}\n"
    assert ok("key", str(tmp_path), "--proj", "7") == f"{sysvmq.ftok(tmp_path, 7):#010x}\n"
    assert ok("key", "--proj", "A", str(tmp_path)) == f"{sysvmq.ftok(tmp_path, ord('A')):#010x}\n"
    assert "no such file" in fails(3, "key", str(tmp_path / "missing"))


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


# -- recv never loses a message it took ------------------------------------------------


@pytest.mark.parametrize(
    ("redirect", "says"),
    [(">/dev/full", "No space left on device"), (">&-", "standard output is closed")],
)
def test_recv_takes_nothing_it_cannot_write(queue: SysVMQ, redirect: str, says: str) -> None:
    queue.send(b"keep me", 3)
    proc = subprocess.run(
        ["sh", "-c", f'exec "$0" recv id:{queue.id} --count 2 {redirect}', str(COMMAND)],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert says in one_line(proc.stderr)
    assert queue.stats().count == 1
    assert queue.peek() == (b"keep me", 3)


def test_recv_writes_bytes_whatever_the_encoding(queue: SysVMQ) -> None:
    queue.send("héllo wörld ✓")
    proc = sysvmq_cmd("recv", f"id:{queue.id}", env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout == "héllo wörld ✓\n".encode()


def test_recv_queues_again_a_message_its_reader_did_not_take(queue: SysVMQ) -> None:
    receiver = subprocess.Popen(
        [str(COMMAND), "recv", f"id:{queue.id}", "--count", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_blocked(receiver.pid, receiver.pid)  # past its check of the output: waiting in msgrcv
        assert receiver.stdout is not None
        receiver.stdout.close()  # the reader goes
        queue.send(b"precious", 7)
        _, err = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    assert receiver.returncode == 141
    line = one_line(err)
    assert "went back to queue" in line and "type 7" in line
    assert queue.receive_message(block=False) == (b"precious", 7)


STOPPED_AT_LINE = """
import signal, sys, threading
from sysvmq import _cli

code = _cli.cmd_recv.__code__
lineno = int(sys.argv[2])

def tracer(frame, event, arg):
    if frame.f_code is not code:
        return None
    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == lineno:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            sys.settrace(None)
            frame.f_trace = None
        return local
    return local

sys.settrace(tracer)
sys.exit(_cli.main(["recv", sys.argv[1]], process=True))
"""


def _lines_from_the_take_on() -> List[int]:
    """The lines of cmd_recv's loop from the take to the end of the message's turn."""
    lines, first = inspect.getsourcelines(sysvmq._cli.cmd_recv)
    start = next(i for i, text in enumerate(lines) if "message = q.receive_message(" in text)
    end = next(i for i, text in enumerate(lines) if "printed += 1" in text)
    return [first + i for i in range(start, end) if lines[i].strip() and not lines[i].strip().startswith("#")]


def test_a_stop_signal_once_recv_took_a_message_prints_it_or_puts_it_back(queue: SysVMQ) -> None:
    # SIGTERM as each line from the take on runs: the message is printed or back in the queue,
    # exactly once, whatever the line (before, a signal just after the take lost it).
    for lineno in _lines_from_the_take_on():
        queue.send(b"precious", 4)
        proc = run_python(STOPPED_AT_LINE, f"id:{queue.id}", str(lineno), check=False)
        printed = proc.stdout.count("precious")
        back = queue.receive_many(5, block=False) if queue.stats().count else []
        assert printed + len(back) == 1, (lineno, proc.stdout, proc.stderr, back)
        assert proc.returncode in (0, 143), (lineno, proc.stderr)  # 0: the signal came once it was done
        assert "Traceback" not in proc.stderr


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def test_ctrl_c_on_a_pipeline_puts_back_what_its_reader_did_not_read(queue: SysVMQ) -> None:
    # Ctrl-C goes to the whole pipeline: the reader dies with the message unread in the pipe,
    # and recv, which waits for it to be read, puts it back.
    queue.send_many([b"one", b"two", b"three"])
    reader = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(60)"
    script = f'"$0" recv id:{queue.id} --count 3 | "{sys.executable}" -c "{reader}"'
    shell = subprocess.Popen(
        ["bash", "-c", f'trap - INT; {script}; echo "${{PIPESTATUS[0]}}" >&2', str(COMMAND)],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until(lambda: queue.stats().count == 2, "recv took one")
        recv = next(pid for pid in session_processes(shell.pid) if b"\0recv\0" in _cmdline(pid))
        wait_blocked(recv, recv, where=SLEEPING)  # waiting for the reader to read it
        os.killpg(shell.pid, signal.SIGINT)
        _, err = shell.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
    lines = err.decode().splitlines()
    assert lines[-1] == "130", err
    assert "went back to queue" in err.decode()
    assert sorted(queue.receive_many(5, block=False)) == [b"one", b"three", b"two"]


def test_recv_timeout_bounds_the_whole_command(queue: SysVMQ) -> None:
    # Three asked for in one second; one comes after 0.6 s. The next must not get a second of
    # its own (before, it did: the command ended after 1.6 s).
    receiver = subprocess.Popen(
        [str(COMMAND), "recv", f"id:{queue.id}", "--count", "3", "--timeout", "1"], stdout=subprocess.PIPE
    )
    began = time.monotonic()
    try:
        wait_blocked(receiver.pid, receiver.pid)
        time.sleep(max(0.0, 0.6 - (time.monotonic() - began)))  # part of the second passes: the scenario
        queue.send(b"late")
        out, _ = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    took = time.monotonic() - began
    assert (receiver.returncode, out) == (5, b"late\n")
    assert took < 1.4, f"{took:.2f} s"


def test_recv_into_head_takes_only_what_head_reads(queue: SysVMQ) -> None:
    queue.send_many([b"one", b"two", b"three"])
    script = f'"$0" recv id:{queue.id} --count 3 | head -1; echo "recv exited ${{PIPESTATUS[0]}}" >&2'
    proc = subprocess.run(["bash", "-c", script, str(COMMAND)], capture_output=True, timeout=60)
    assert proc.stdout == b"one\n"
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert err.endswith("recv exited 141\n"), err
    left = []
    while queue.stats().count:
        left.append(queue.receive(block=False))
    assert sorted(left) == [b"three", b"two"]  # taken and not read: back in the queue


# -- recv prints what was sent, one message a line, safely ------------------------------

TRICKY = [
    b"\xff",
    b"\\xff",
    b"two\nlines",
    b"\x1b[31mred\x1b[0m",
    b"nul\x00byte",
    "bidi \u202eevil".encode(),
    "c1 \u009b2J".encode(),
    b"back\\slash\ttab\rreturn",
    "héllo ✓".encode(),
    b"",
]


def test_recv_prints_one_line_a_message_that_reads_back(queue: SysVMQ) -> None:
    queue.send_many(TRICKY)
    out = sysvmq_cmd("recv", f"id:{queue.id}", "--all").stdout
    lines = out.split(b"\n")[:-1]
    assert len(lines) == len(TRICKY)
    assert [unescape(line) for line in lines] == TRICKY
    assert lines[0] != lines[1]  # the byte 0xff and the text \xff differ
    text = out.decode("utf-8")
    assert all(ch.isprintable() or ch == "\n" for ch in text)  # no control character reaches the terminal
    assert lines[3] == b"\\x1b[31mred\\x1b[0m"
    assert lines[8] == "héllo ✓".encode()


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_escape_is_one_printable_line_that_reads_back(data: bytes) -> None:
    line = escape(data)
    text = line.decode("utf-8")
    assert all(ch.isprintable() for ch in text)
    assert unescape(line) == data


def test_recv_raw_writes_the_bytes_as_they_are(queue: SysVMQ) -> None:
    queue.send_many([b"\x00\xff\n", b"\x1b[2J"])
    proc = sysvmq_cmd("recv", f"id:{queue.id}", "--all", "--raw")
    assert (proc.returncode, proc.stdout) == (0, b"\x00\xff\n\x1b[2J")


def test_recv_shows_types_on_request(queue: SysVMQ) -> None:
    queue.send(b"hello", 3)
    queue.send(b"tab\there", 12)
    assert ok("recv", f"id:{queue.id}", "--all", "--show-type") == "3\thello\n12\ttab\\there\n"


def test_peek_takes_the_type_as_recv_would(queue: SysVMQ) -> None:
    queue.send(b"a", 1)
    queue.send(b"b", 2)
    queue.send(b"c", 3)
    queue.send(b"d", 2)
    q = f"id:{queue.id}"
    assert ok("recv", q, "--peek", "--type", "2", "--all") == "b\nd\n"
    assert ok("recv", q, "--peek", "--type", "2") == "b\n"
    assert ok("recv", q, "--peek", "--type", "-2", "--all", "--show-type") == "1\ta\n2\tb\n2\td\n"
    assert ok("recv", q, "--peek", "--type", "3", "--count", "1", "--show-type") == "3\tc\n"
    assert "no message of type 5" in fails(5, "recv", q, "--peek", "--type", "5", "--nowait")
    assert queue.stats().count == 4


def test_peek_waits_for_a_match_until_the_timeout(queue: SysVMQ) -> None:
    queue.send(b"other", 1)
    began = time.monotonic()
    fails(5, "recv", f"id:{queue.id}", "--peek", "--type", "2", "--timeout", "0.5")
    assert time.monotonic() - began >= 0.5
    peeker = subprocess.Popen(
        [str(COMMAND), "recv", f"id:{queue.id}", "--peek", "--type", "2", "--timeout", "30"], stdout=subprocess.PIPE
    )
    try:
        queue.send(b"match", 2)
        out, _ = peeker.communicate(timeout=30)
    finally:
        peeker.kill()
    assert (peeker.returncode, out) == (0, b"match\n")
    assert queue.stats().count == 2


PRODUCER = """
import sys, sysvmq
q = sysvmq.SysVMQ.attach(int(sys.argv[1]))
while True:
    q.send_many([b"x" * 100] * 16)
"""


def test_recv_all_takes_only_what_was_queued_when_it_started(queue: SysVMQ) -> None:
    room = queue.stats().max_size // 100  # the most 100-byte messages the queue can hold at any time
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(queue.id)])
    try:
        wait_until(lambda: queue.stats().count >= room // 2, "the producer filled half the queue")
        proc = sysvmq_cmd("recv", f"id:{queue.id}", "--all", timeout=60)
    finally:
        producer.kill()
        producer.wait()
    assert proc.returncode == 0, proc.stderr
    assert 0 < proc.stdout.count(b"\n") <= room


def _own_ipc_namespace() -> bool:
    """Whether the test runs in an IPC namespace that its parent (unshare --ipc's caller) is not in."""
    try:
        return os.readlink("/proc/self/ns/ipc") != os.readlink(f"/proc/{os.getppid()}/ns/ipc")
    except OSError:
        return False


@contextlib.contextmanager
def msgmax_lowered(to: int) -> Iterator[None]:
    """kernel.msgmax at ``to`` meanwhile: a sysctl of the IPC namespace, so only in one of the test's own."""
    if os.geteuid() != 0 or not _own_ipc_namespace():
        pytest.skip("lowers kernel.msgmax: needs root in a private IPC namespace (unshare --ipc)")
    path = pathlib.Path("/proc/sys/kernel/msgmax")
    before = path.read_text()
    path.write_text(str(to))
    try:
        yield
    finally:
        path.write_text(before)


def test_recv_takes_a_message_longer_than_a_lowered_msgmax(queue: SysVMQ) -> None:
    long = b"A" * 5000
    queue.send(long, 2)
    queue.send(b"small", 1)
    with msgmax_lowered(100):
        assert sysvmq.limits().msgmax == 100
        err = fails(1, "recv", f"id:{queue.id}", "--peek")  # MSG_COPY copies at most msgmax: it cannot
        assert "recv without --peek takes it" in err
        assert ok("recv", f"id:{queue.id}", "--all", "--show-type") == f"2\t{long.decode()}\n1\tsmall\n"
    assert queue.stats().count == 0


# -- arguments parse as an operator expects ---------------------------------------------


def test_options_and_positionals_in_any_order(queue: SysVMQ) -> None:
    q = f"id:{queue.id}"
    ok("send", q, "--type", "2", "hello")
    ok("send", "--type", "3", q, "world")
    ok("send", q, "again", "--type", "4")
    assert ok("recv", "--count", "3", q, "--show-type") == "2\thello\n3\tworld\n4\tagain\n"


BAD_ARGUMENTS = [
    (["recv", "0xZZ"], "QUEUE"),
    (["recv", "017"], "QUEUE"),
    (["recv", "id:abc"], "QUEUE"),
    (["recv", "id:-1"], "QUEUE"),
    (["recv", "99999999999"], "QUEUE"),
    (["recv", "0"], "QUEUE"),
    # Only ipcs' forms: Python's int() grammar is not the key's.
    (["recv", "--", "-1"], "QUEUE"),
    (["recv", "+5"], "QUEUE"),
    (["recv", "1_000"], "QUEUE"),
    (["recv", "0x12_34"], "QUEUE"),
    (["recv", "0o17"], "QUEUE"),
    (["recv", "0x1234 "], "QUEUE"),
    (["recv", " 0x1234"], "QUEUE"),
    (["recv", "id:0x10"], "QUEUE"),
    (["recv", "id:+1"], "QUEUE"),
    (["create", "--", "-1"], "KEY"),
    (["create", "1_000"], "KEY"),
    (["send", "0x5e000001", "--type", str(2**63), "x"], "--type"),
    (["send", "0x5e000001", "--type", "0", "x"], "--type"),
    (["send", "0x5e000001", "--type", "2**63", "x"], "--type"),
    (["recv", "0x5e000001", "--type", "x"], "--type"),
    (["stat", "/tmp", "--proj", "0"], "--proj"),
    (["key", "/tmp", "--proj", "256"], "--proj"),
    (["update", "0x5e000001", "--mode", "999"], "--mode"),
    (["update", "0x5e000001", "--mode", "rw"], "--mode"),
    (["update", "0x5e000001", "--max-size", "4294967296"], "--max-size"),
    (["update", "0x5e000001", "--max-size", "2147483648"], "--max-size"),
    (["update", "0x5e000001", "--max-size", "0"], "--max-size"),
    (["update", "0x5e000001", "--uid", "no-such-user-here"], "--uid"),
    (["update", "0x5e000001", "--gid", "-1"], "--gid"),
    (["update", "0x5e000001"], "at least one"),
    (["recv", "0x5e000001", "--timeout", "-1"], "--timeout"),
    (["recv", "0x5e000001", "--timeout", "soon"], "--timeout"),
    (["recv", "0x5e000001", "--timeout", "nan"], "--timeout"),
    (["recv", "0x5e000001", "--count", "0"], "--count"),
    (["recv", "0x5e000001", "--count", "3", "--all"], "--all"),
    (["recv", "0x5e000001", "--all", "--timeout", "1"], "--all"),
    (["recv", "0x5e000001", "--raw", "--json"], "--json"),
    (["send", "0x5e000001", "x", "--binary"], "--binary"),
    (["send", "0x5e000001", "x", "y"], "unrecognized arguments: y"),
    (["create", "0"], "IPC_PRIVATE"),
    (["create", "0", "--exclusive"], "IPC_PRIVATE"),
    (["create"], "KEY"),
    (["create", "0x5e000001", "--private"], "--private"),
    (["create", "0x5e000001", "--max-size", "4294967296"], "--max-size"),
    (["bench", "--size", str(MSGMAX + 1)], "--size"),
    (["bench", "--producers", "0"], "--producers"),
    (["bench", "--messages", "many"], "--messages"),
    (["demo", "--size", str(MSGMAX + 1)], "--size"),
]


@pytest.mark.parametrize(("args", "named"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_every_malformed_argument_is_a_usage_error_naming_it(args: List[str], named: str) -> None:
    err = fails(2, *args)
    assert named in err
    assert not re.search(r"invalid _|_int|_mode|_seconds|_positive", err), err  # no internal names
    assert err.startswith(f"sysvmq {args[0]}: ")


def test_a_key_is_decimal_or_hex_as_ipcs_writes_it(key: str) -> None:
    msqid = created(ok("create", key, "--exclusive"))
    assert json.loads(ok("stat", str(int(key, 16)), "--json"))["id"] == msqid
    assert json.loads(ok("stat", key.upper().replace("0X", "0x"), "--json"))["id"] == msqid
    assert json.loads(ok("stat", f"id:{msqid}", "--json"))["id"] == msqid
    for other in ("-1", f"+{int(key, 16)}", key + " ", " " + key, f"{int(key, 16):_}"):
        assert "QUEUE" in fails(2, "rm", "--", other)
    assert exists(msqid)


def test_messages_name_sysvmq_commands_not_library_calls(queue: SysVMQ) -> None:
    queue.update(max_size=10)
    err = fails(1, "send", f"id:{queue.id}", "eleven byte")
    assert f"sysvmq update id:{queue.id} --max-size 11" in err
    assert "update(" not in err
    err = fails(1, "send", f"id:{queue.id}", "x" * (MSGMAX + 1))
    assert "kernel.msgmax" in err and "(" + str(MSGMAX) + ")" in err
    assert "sysvmq create --private" in fails(2, "create", "0")
    assert "id:N" in fails(2, "stat", "0")
    assert queue.stats().count == 0


def test_a_message_argument_goes_as_the_bytes_the_shell_passed(queue: SysVMQ) -> None:
    proc = subprocess.run([str(COMMAND), "send", f"id:{queue.id}", b"caf\xe9"], capture_output=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert queue.receive() == b"caf\xe9"


def test_create_private_is_the_way_to_a_private_queue() -> None:
    out = ok("create", "--private", "--mode", "640", "--max-size", "4096")
    msqid = created(out)
    assert out == f"created private queue {msqid} (use it as id:{msqid})\n"
    st = SysVMQ.attach(msqid).stats()
    assert (st.key, st.mode, st.max_size) == (0, 0o640, 4096)
    remove(SysVMQ.attach(msqid))


@needs_root
def test_create_that_cannot_set_max_size_creates_nothing(free_key: int) -> None:
    # Above kernel.msgmnb needs CAP_SYS_RESOURCE, which uid 65534 has not (whatever root has here).
    proc = as_nobody("create", f"{free_key:#x}", "--exclusive", "--max-size", str(MSGMNB + 1))
    assert proc.returncode == 4
    err = one_line(proc.stderr)
    assert "CAP_SYS_RESOURCE" in err and "removed again" in err
    with pytest.raises(sysvmq.QueueNotFound):
        register(SysVMQ.open(free_key))  # registered if it exists, so that it is removed


@needs_root
def test_create_on_an_existing_queue_applies_all_or_nothing(key: str) -> None:
    msqid = created(ok("create", key, "--exclusive"))
    out = ok("create", key, "--mode", "640", "--max-size", "4096")
    assert out == (
        f"exists: queue {msqid} (key {int(key, 16):#010x}); now mode 640, max size 4096 bytes "
        f"(was mode 600, max size {MSGMNB} bytes)\n"
    )
    st = SysVMQ.attach(msqid).stats()
    assert (st.mode, st.max_size) == (0o640, 4096)
    proc = as_nobody("create", key, "--mode", "666", "--max-size", "100")  # not the owner, nor a reader
    assert proc.returncode == 4
    err = one_line(proc.stderr)
    assert "nothing changed" in err and "only the owner or creator" in err and "no read permission" not in err
    assert SysVMQ.attach(msqid).stats() == st


def test_rm_tries_every_operand_and_reports_each_failure(make_queue: Callable[..., SysVMQ], free_key: int) -> None:
    a, c = make_queue(), make_queue()
    proc = sysvmq_cmd("rm", f"id:{a.id}", f"{free_key:#x}", f"id:{c.id}")
    assert proc.returncode == 3
    assert proc.stdout.decode().splitlines() == [
        f"removed queue {a.id} (key 0x00000000)",
        f"removed queue {c.id} (key 0x00000000)",
    ]
    err = proc.stderr.decode().splitlines()
    assert len(err) == 2 and f"{free_key:#x}" in err[0] and "1 of 3 not removed" in err[1]
    assert not exists(a.id) and not exists(c.id)


def test_rm_says_how_many_messages_it_destroyed(make_queue: Callable[..., SysVMQ]) -> None:
    full, empty = make_queue(), make_queue()
    full.send_many([b"a", b"bc", b"def"])
    assert ok("rm", f"id:{full.id}", f"id:{empty.id}").splitlines() == [
        f"removed queue {full.id} (key 0x00000000), and the 3 messages (6 bytes) it held",
        f"removed queue {empty.id} (key 0x00000000)",
    ]


@pytest.mark.parametrize("command", ["recv", "send"])
def test_a_queue_removed_under_a_waiting_command_is_said_in_words(queue: SysVMQ, command: str) -> None:
    if command == "send":
        queue.update(max_size=1)
        queue.send(b"x")
    waiter = subprocess.Popen(
        [str(COMMAND), command, f"id:{queue.id}", *(["y"] if command == "send" else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_blocked(waiter.pid, waiter.pid)
        queue.destroy()
        _, err = waiter.communicate(timeout=30)
    finally:
        waiter.kill()
    assert waiter.returncode == 3
    assert one_line(err) == (
        f"sysvmq {command}: {'msgrcv' if command == 'recv' else 'msgsnd'} on queue {queue.id} (private): "
        f"the queue was removed while {command} waited\n"
    )


def test_line_by_line_send_names_the_line_that_failed(queue: SysVMQ) -> None:
    queue.update(max_size=10)
    err = fails(1, "send", f"id:{queue.id}", input=b"ok\nthis line is too long\nlater\n")
    assert "line 2 of standard input" in err and "1 line sent before it, none after" in err
    assert queue.receive(block=False) == b"ok"
    assert queue.stats().count == 0


# Ctrl-C (SIGINT to the main thread) at a given line of cmd_send, as it returns ("return"),
# or in the interpreter's shutdown ("exit"); the command run as the console script runs it.
SEND_INTERRUPTED_AT = """
import atexit, signal, sys, threading
from sysvmq import _cli

code = _cli.cmd_send.__code__
where = sys.argv[1]

def interrupt():
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

def tracer(frame, event, arg):
    if frame.f_code is not code:
        return None
    def local(frame, event, arg):
        if (event == "line" and str(frame.f_lineno) == where) or (event == "return" and where == "return"):
            sys.settrace(None)
            frame.f_trace = None
            interrupt()
        return local
    return local

if where == "exit":
    atexit.register(interrupt)
else:
    sys.settrace(tracer)
sys.argv[1:] = sys.argv[2:]
_cli.run()
"""


def _lines_after_the_send_loop() -> List[int]:
    lines, first = inspect.getsourcelines(sysvmq._cli.cmd_send)
    start = next(i for i, text in enumerate(lines) if "sent += 1" in text) + 1
    return [first + i for i in range(start, len(lines)) if lines[i].strip() and not lines[i].strip().startswith("#")]


@pytest.mark.parametrize("where", [*map(str, _lines_after_the_send_loop()), "return", "exit"])
def test_ctrl_c_once_every_line_is_sent_is_no_traceback(queue: SysVMQ, where: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SEND_INTERRUPTED_AT, where, "send", f"id:{queue.id}"],
        input=b"a\nb\nc\n",
        capture_output=True,
        timeout=60,
    )
    assert queue.receive_many(10, block=False) == [b"a", b"b", b"c"]
    # Everything was sent: exit 0 and nothing said, or (stopped before it knew) 130 and one line that says so.
    if proc.returncode == 0:
        assert proc.stderr == b""
    else:
        assert proc.returncode == 130, proc.stderr
        assert one_line(proc.stderr) == "sysvmq send: interrupted: 3 lines sent, the rest not\n"


def test_update_refuses_a_max_size_the_kernel_would_not_keep(queue: SysVMQ) -> None:
    before = queue.stats()
    for size in (2**32, 2**31, 2**32 + 5):
        assert "--max-size" in fails(2, "update", f"id:{queue.id}", "--max-size", str(size))
    assert queue.stats() == before


def test_update_and_its_names(queue: SysVMQ) -> None:
    out = ok("update", f"id:{queue.id}", "--uid", "nobody", "--mode", "0o640")
    assert out.startswith(f"queue {queue.id}: mode 640, max {MSGMNB} bytes, owner nobody:")


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
    note_created(msqid)
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
    note_created(int(found.group(1)))
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
    note_created(msqid)
    assert err == b"demo exited 141\n"
    wait_until(lambda: not session_processes(proc.pid), "every process of the pipeline ended")
    assert not exists(msqid)


def test_bench_json() -> None:
    bench = start("bench", "-v", "--messages", "3000", "--size", "4", "--producers", "2", "--consumers", "2", "--json")
    assert bench.stderr is not None
    msqid = int(bench.stderr.readline().split()[-1])
    note_created(msqid)
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


def test_bench_plot_that_cannot_be_written_fails_before_the_run(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dir.png").mkdir()
    for path, says in (
        (tmp_path / "missing" / "lat.png", f"no directory {tmp_path / 'missing'}"),
        (tmp_path / "dir.png", "it is a directory"),
    ):
        # -v would name the queue the run made (on standard error): the one line says nothing was.
        err = fails(1, "bench", "-v", "--messages", "100", "--plot", str(path))
        assert err == f"sysvmq bench: argument --plot: cannot write {path}: {says}\n"


# The file passes the checks before the run, and its disk fills up meanwhile.
DISK_FILLS = """
import errno, os, sys
from sysvmq import _plot
from sysvmq._cli import main
def full(result, samples, path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
_plot.pyplot = lambda: None
_plot.latency = full
sys.exit(main(sys.argv[1:]))
"""


def test_bench_plot_that_fails_after_the_run_still_prints_the_figures(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latency"  # no extension: no format to check, matplotlib or not (PyPy may have none)
    args = ["bench", "--messages", "200", "--rate", "2000", "--json", "--plot", str(path)]
    proc = subprocess.run([sys.executable, "-c", DISK_FILLS, *args], capture_output=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["latency"]["messages"] > 0
    assert one_line(proc.stderr) == (
        f"sysvmq bench: argument --plot: cannot write {path}: No space left on device (the figures are above)\n"
    )


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


# -- the README's command-line section stays true -------------------------------------


def test_every_command_in_the_readme_session_parses() -> None:
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## The command line", 1)[1].split("\n## ", 1)[0]
    session = section.split("\n```\n", 2)[1]
    steps = [step.split("\n", 1) for step in session.split("$ ")[1:]]
    assert len(steps) > 5
    for command, *shown in steps:
        words = shlex.split(command.split(";")[0].split("|")[-1])
        if words[0] != "sysvmq":
            continue
        if "exit 2" in "".join(shown):  # the session shows a usage error on purpose
            with pytest.raises(SystemExit):
                parser().parse_args(words[1:])
        else:
            parser().parse_args(words[1:])
