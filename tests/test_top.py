"""``sysvmq top``: its lines and JSON lines read back while queues fill and drain, and the live view in tmux.

Other programs may have queues: each assertion looks only at the rows of the
queues this test made (by id).
"""

import json
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from opsupport import COMMAND, ok, wait_for
from support import fill, register

from sysvmq import SysVMQ

ROOT = pwd.getpwuid(0).pw_name
HEADER = ["KEY", "ID", "OWNER", "MESSAGES", "BYTES", "MAX_BYTES", "FULL%", "MSG/S", "LAST_SEND", "LAST_RECV"]


class Lines:
    """A running ``sysvmq top`` whose standard output is read a line at a time, each with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([str(COMMAND), "top", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer = b""

    def line(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no line from sysvmq top within {timeout} s (exit {self.proc.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def snapshot(self) -> Dict[int, Dict[str, Any]]:
        """The next JSON refresh, as rows by queue id (checking the order of all of them on the way)."""
        doc = json.loads(self.line())
        rows = doc["queues"]
        fullness = [r["full_percent"] for r in rows]
        assert fullness == sorted(fullness, reverse=True), "not sorted by fullness"
        return {r["id"]: r for r in rows}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def top_json() -> Iterator[Callable[..., Lines]]:
    started: List[Lines] = []

    def start(*args: str) -> Lines:
        started.append(Lines("--json", *args))
        return started[-1]

    yield start
    for lines in started:
        lines.stop()


def _row_when(top: Lines, msqid: int, condition: Callable[[Dict[str, Any]], bool]) -> Dict[str, Any]:
    """Read refreshes until the queue's row meets the condition."""

    def probe() -> Optional[Dict[str, Any]]:
        row = top.snapshot().get(msqid)
        return row if row is not None and condition(row) else None

    return wait_for(f"queue {msqid}'s row to change", probe, every=0)


def test_json_lines_follow_a_queue_as_it_fills_and_drains(
    top_json: Callable[..., Lines], make_queue: Callable[..., SysVMQ]
) -> None:
    q = make_queue()
    top = top_json(f"id:{q.id}", "--interval", "0.1")
    first = top.snapshot()
    assert list(first) == [q.id]  # the queue named, and no other
    row = first[q.id]
    st = q.stats()
    assert row == {
        "key": f"{st.key:#010x}",
        "id": q.id,
        "owner": ROOT,
        "messages": 0,
        "bytes": 0,
        "max_bytes": st.max_size,
        "full_percent": 0.0,
        "messages_per_second": None,  # nothing to compare with yet
        "seconds_since_send": None,  # never
        "seconds_since_receive": None,
    }

    n = fill(q, 1024)
    full = _row_when(top, q.id, lambda r: r["messages"] == n)
    assert (full["bytes"], full["full_percent"]) == (n * 1024, 100.0)
    assert full["messages_per_second"] > 0
    assert 0 <= full["seconds_since_send"] <= 5 and full["seconds_since_receive"] is None

    while q.stats().count:
        q.receive()
    empty = _row_when(top, q.id, lambda r: r["messages"] == 0)
    assert (empty["bytes"], empty["full_percent"]) == (0, 0.0)
    assert empty["messages_per_second"] < 0
    assert 0 <= empty["seconds_since_receive"] <= 5
    steady = top.snapshot()[q.id]
    assert steady["messages_per_second"] == 0.0
    assert top.stop() == 0  # Ctrl-C is how top ends: not an error


def test_queues_made_and_removed_come_and_go(top_json: Callable[..., Lines]) -> None:
    top = top_json("--interval", "0.1")
    top.snapshot()
    q = register(SysVMQ.private())
    try:
        wait_for("the new queue to appear", lambda: True if q.id in top.snapshot() else None, every=0)
    finally:
        q.destroy()
    wait_for("the removed queue to go", lambda: True if q.id not in top.snapshot() else None, every=0)


def test_a_queue_named_by_key_is_followed_through_its_re_creation(
    top_json: Callable[..., Lines], free_key: int
) -> None:
    first = register(SysVMQ.create(free_key, exclusive=True))
    top = top_json(f"{free_key:#x}", "--interval", "0.1")
    assert list(top.snapshot()) == [first.id]
    first.destroy()
    wait_for("the removed queue to go", lambda: True if not top.snapshot() else None, every=0)
    second = register(SysVMQ.create(free_key, exclusive=True))
    assert second.id != first.id
    wait_for("the new queue with that key", lambda: True if list(top.snapshot()) == [second.id] else None, every=0)


def test_fullest_first_and_empty_messages_fill_a_queue_too(make_queue: Callable[..., SysVMQ]) -> None:
    quarter, three_quarters, empty, counted = make_queue(), make_queue(), make_queue(), make_queue()
    quarter.update(max_size=8192)
    three_quarters.update(max_size=8192)
    quarter.send_many([bytes(1024)] * 2)
    three_quarters.send_many([bytes(1024)] * 6)
    # msgsnd counts every message as at least a byte against max_size: ten empty messages fill ten bytes.
    counted.update(max_size=10)
    assert fill(counted, 0) == 10
    doc = json.loads(ok("top", "--count", "1", "--json"))
    mine = {q.id: q for q in (quarter, three_quarters, empty, counted)}
    rows = [r for r in doc["queues"] if r["id"] in mine]
    assert [r["id"] for r in rows] == [counted.id, three_quarters.id, quarter.id, empty.id]
    assert [r["full_percent"] for r in rows] == [100.0, 75.0, 25.0, 0.0]
    assert rows[0]["bytes"] == 0 and rows[0]["messages"] == 10


def _parse_blocks(text: str) -> List[Dict[int, List[str]]]:
    """Text refreshes (a header, rows, a blank line) as rows of cells by queue id."""
    blocks = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        header, *rows = block.split("\n")
        assert header.split() == HEADER
        blocks.append({int(cells[1]): cells for cells in (row.split() for row in rows)})
    return blocks


def test_lines_read_back_with_split(make_queue: Callable[..., SysVMQ], free_key: int) -> None:
    keyed = register(SysVMQ.create(free_key, exclusive=True))
    keyed.send(b"x" * 4096)
    private = make_queue()
    private.send(b"")
    private.receive()
    proc = subprocess.run(
        [str(COMMAND), "top", f"{free_key:#x}", f"id:{private.id}", "--count", "3", "--interval", "0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    blocks = _parse_blocks(proc.stdout)
    assert len(blocks) == 3
    assert all(set(b) == {keyed.id, private.id} for b in blocks)
    first, last = blocks[0], blocks[-1]
    assert first[keyed.id][:8] == [f"{free_key:#010x}", str(keyed.id), ROOT, "1", "4096", "16384", "25.0", "-"]
    assert last[keyed.id][7] == "0"  # no change since the refresh before
    assert last[keyed.id][9] == "never" and last[keyed.id][8].endswith("s")
    assert last[private.id][2:8] == [ROOT, "0", "0", "16384", "0.0", "0"]
    assert last[private.id][8].endswith("s") and last[private.id][9].endswith("s")
    assert list(last) == [keyed.id, private.id]  # fuller first


def test_a_queue_id_that_does_not_exist_is_an_error(make_queue: Callable[..., SysVMQ]) -> None:
    gone = make_queue()
    gone.destroy()  # an id names one queue, never made again: nothing to wait for
    proc = subprocess.run([str(COMMAND), "top", f"id:{gone.id}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr == f"sysvmq top: no queue has id {gone.id}\n"


def test_a_key_whose_queue_is_not_made_yet_is_waited_for(top_json: Callable[..., Lines], free_key: int) -> None:
    top = top_json(f"{free_key:#x}", "--interval", "0.1")
    doc = json.loads(top.line())
    assert (doc["queues"], doc["absent"]) == ([], [f"{free_key:#010x}"])
    made = register(SysVMQ.create(free_key, exclusive=True))
    doc = wait_for(
        "the queue made with that key", lambda: d if (d := json.loads(top.line()))["queues"] else None, every=0
    )
    assert ([r["id"] for r in doc["queues"]], doc["absent"]) == ([made.id], [])
    assert top.proc.poll() is None


def _screen_lines(columns: int) -> List[str]:
    from sysvmq._top import Row, _screen

    wide = Row("0x5eed0001", 12345678, "postgres", 12, 10800, 16384, 65.9, -12.5, 8, None)
    other = Row("0x00000000", 23456789, "root", 1, 3000, 4096, 73.2, None, 120, 99)
    text = _screen([other, wide], time.time(), 1.0, os.terminal_size((columns, 24)), True)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).split("\n")


def test_on_80_columns_every_column_and_the_quit_hint_show_whole() -> None:
    lines = _screen_lines(80)
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    assert lines[0].endswith("(q or Ctrl-C quits)")
    assert lines[2] == ""  # nothing left out
    header, first, second = lines[3:6]
    assert header.split() == ["KEY", "ID", "OWNER", "MSGS", "BYTES", "MAX", "FULL%", "MSG/S", "SENT", "RECVD"]
    assert first.split() == ["0x00000000", "23456789", "root", "1", "3000", "4096", "73.2", "-", "120s", "99s"]
    assert second.split()[-2:] == ["8s", "never"]


def test_narrower_it_leaves_columns_out_and_says_which() -> None:
    lines = _screen_lines(45)
    header = lines[3].split()
    assert header[:2] == ["KEY", "ID"] and "FULL%" in header and "OWNER" not in header
    assert all(len(line) <= 45 for line in lines[3:6])
    hidden = lines[2].split("hidden, too narrow: ", 1)[1].split(", ")
    assert "OWNER" in hidden and len(hidden) + len(header) == len(HEADER)


def test_help_says_each_range_and_default() -> None:
    out = ok("top", "--help")
    assert "--proj N" in out and "1 to 255" in out
    assert "at least 0.05 (default 1)" in " ".join(out.split())


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--interval", "soon"], "--interval"), (["--interval", "0.01"], "--interval"), (["--count", "0"], "--count")],
)
def test_a_malformed_option_is_a_usage_error_naming_it(args: List[str], named: str) -> None:
    proc = subprocess.run([str(COMMAND), "top", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"sysvmq top: argument {named}: ") and proc.stderr.count("\n") == 1
    assert "invalid" not in proc.stderr and "_interval" not in proc.stderr


# -- on a terminal: tmux -----------------------------------------------------------


class Tmux:
    """A tmux server of our own (its own socket) running one command in a 150x30 terminal."""

    def __init__(self, command: str) -> None:
        self.socket = f"sysvmq-test-{uuid.uuid4().hex[:8]}"
        self("new-session", "-d", "-x", "150", "-y", "30", "-s", "top", command)

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def screen(self) -> List[str]:
        return self("capture-pane", "-p", "-t", "top").splitlines()

    def everything(self) -> str:
        """The screen and its scrollback."""
        return self("capture-pane", "-p", "-S", "-", "-t", "top")

    def flags(self) -> Dict[str, str]:
        names = ("alternate_on", "cursor_flag")
        values = self("display-message", "-p", "-t", "top", "|".join(f"#{{{n}}}" for n in names)).strip().split("|")
        return dict(zip(names, values))

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def _row_on_screen(tmux: Tmux, msqid: int, messages: Optional[int] = None) -> Optional[List[str]]:
    """The queue's row as the screen shows it now (once it shows that many messages)."""
    for line in tmux.screen():
        cells = line.split()
        if len(cells) == len(HEADER) and cells[1] == str(msqid):
            return cells if messages is None or cells[3] == str(messages) else None
    return None


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
@pytest.mark.parametrize("quit_with", ["q", "C-c"])
def test_on_a_terminal_it_redraws_in_place_and_gives_the_terminal_back(
    quit_with: str, make_queue: Callable[..., SysVMQ], tmp_path: "os.PathLike[str]"
) -> None:
    q = make_queue()
    before, after = os.path.join(tmp_path, "stty.before"), os.path.join(tmp_path, "stty.after")
    status = os.path.join(tmp_path, "status")
    # The terminal's settings before and after, and top's exit status, land in
    # files; then the pane stays (a dead pane's flags are tmux's, not ours).
    tmux = Tmux(
        f"stty -g > {before}; {COMMAND} top id:{q.id} --interval 0.1; echo $? > {status}.tmp; "
        f"stty -g > {after}; mv {status}.tmp {status}; exec sleep 600"
    )
    try:
        row = wait_for("top to show the queue", lambda: _row_on_screen(tmux, q.id))
        assert row[3:7] == ["0", "0", "16384", "0.0"]
        assert tmux.flags()["alternate_on"] == "1" and tmux.flags()["cursor_flag"] == "0"

        n = fill(q, 1024)
        row = wait_for("the full queue", lambda: _row_on_screen(tmux, q.id, messages=n))
        assert row[4:7] == [str(n * 1024), "16384", "100.0"] and row[7].startswith("+")
        while q.stats().count:
            q.receive()
        row = wait_for("the drained queue", lambda: _row_on_screen(tmux, q.id, messages=0))
        assert row[6] == "0.0" and row[7].startswith("-") and row[9].endswith("s")

        # Redrawn in place: one header and one title, however many refreshes there were.
        shown = tmux.everything()
        assert shown.count("LAST_RECV") == 1 and shown.count("sysvmq top ") == 1

        tmux("send-keys", "-t", "top", quit_with)
        wait_for("top to end", lambda: True if os.path.exists(status) else None)
        with open(status) as f:
            assert f.read() == "0\n"
        with open(before) as b, open(after) as a:
            assert a.read() == b.read()  # every terminal setting as it was
        # tmux reads the pane's last bytes in its own time: poll for the normal screen and a visible cursor.
        wait_for(
            "the normal screen and cursor",
            lambda: True if tmux.flags() == {"alternate_on": "0", "cursor_flag": "1"} else None,
        )
        assert _row_on_screen(tmux, q.id) is None  # the normal screen is back, the view gone with the alternate one
    finally:
        tmux.kill()
