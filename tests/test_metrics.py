"""``sysvmq metrics``: values against stats(), promtool's verdict, the atomic --output, a reader without permission.

Other programs on the host may have queues: every assertion here looks only at
the series of queues this test made (by id).
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
from typing import Callable

import pytest
from opsupport import PER_QUEUE, expected_labels, ok, parse_text, run, series_of
from support import run_python

import sysvmq
from sysvmq import SysVMQ

ROOT = pwd.getpwuid(0).pw_name


def _busy_queues(make_queue: Callable[..., SysVMQ]) -> "list[SysVMQ]":
    """Three queues that differ in every field the metrics show."""
    a, b, c = make_queue(), make_queue(mode=0o640), make_queue()
    a.send_many([b"x" * 100, b"y" * 50, b"z"])
    a.receive()
    b.update(max_size=4096)
    b.send(b"only one")
    return [a, b, c]


def test_every_series_of_our_queues_is_what_stats_says(make_queue: Callable[..., SysVMQ]) -> None:
    mine = _busy_queues(make_queue)
    samples, meta = parse_text(ok("metrics"))
    for q in mine:
        st = q.stats()
        for name, field in PER_QUEUE.items():
            assert series_of(samples, name, q.id) == {expected_labels(st, ROOT): getattr(st, field)}, name
    lim = sysvmq.limits()
    assert samples["sysvmq_limit_msgmax_bytes"] == {(): lim.msgmax}
    assert samples["sysvmq_limit_msgmnb_bytes"] == {(): lim.msgmnb}
    assert samples["sysvmq_limit_msgmni"] == {(): lim.msgmni}
    # The totals count other programs' queues too: ours are a lower bound.
    assert samples["sysvmq_queues"][()] >= len(mine)
    assert samples["sysvmq_messages"][()] >= sum(q.stats().count for q in mine)
    assert samples["sysvmq_bytes"][()] >= sum(q.stats().size for q in mine)
    names = set(PER_QUEUE) | {"sysvmq_queues", "sysvmq_messages", "sysvmq_bytes"}
    names |= {"sysvmq_limit_msgmax_bytes", "sysvmq_limit_msgmnb_bytes", "sysvmq_limit_msgmni"}
    assert set(meta) == names
    assert all(kind == "gauge" and help_text for kind, help_text in meta.values())


def test_a_key_is_labelled_in_hex(free_key: int) -> None:
    from support import register

    q = register(SysVMQ.create(free_key, exclusive=True))
    samples, _ = parse_text(ok("metrics"))
    (labels,) = series_of(samples, "sysvmq_queue_messages", q.id)
    assert dict(labels)["key"] == f"{free_key:#010x}"


def test_promtool_finds_nothing_to_say(make_queue: Callable[..., SysVMQ]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    _busy_queues(make_queue)
    text = ok("metrics")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    # promtool does lint here: a name against the conventions fails.
    bad = "# HELP sysvmq_queue_count x\n# TYPE sysvmq_queue_count counter\nsysvmq_queue_count 1\n"
    rejected = subprocess.run([promtool, "check", "metrics"], input=bad, capture_output=True, text=True, timeout=60)
    assert rejected.returncode != 0 and "_total" in rejected.stdout + rejected.stderr


def test_output_replaces_the_file_whole(make_queue: Callable[..., SysVMQ], tmp_path: "os.PathLike[str]") -> None:
    q = make_queue()
    q.send(b"counted")
    path = os.path.join(tmp_path, "sysvmq.prom")
    with open(path, "w") as f:
        f.write("stale 1\n")
    old_inode = os.stat(path).st_ino
    with open(path) as reader:  # a collector in the middle of reading the old file
        assert ok("metrics", "--output", path) == ""
        assert reader.read() == "stale 1\n"  # its file was renamed over, not rewritten
    assert os.stat(path).st_ino != old_inode
    assert os.listdir(tmp_path) == ["sysvmq.prom"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # readable by the collector's user
    with open(path) as f:
        samples, _ = parse_text(f.read())
    assert series_of(samples, "sysvmq_queue_messages", q.id) == {expected_labels(q.stats(), ROOT): 1}


def test_output_through_a_link_replaces_the_file_it_points_to(tmp_path: "os.PathLike[str]") -> None:
    real = os.path.join(tmp_path, "real.prom")
    link = os.path.join(tmp_path, "sysvmq.prom")
    with open(real, "w") as f:
        f.write("stale 1\n")
    os.symlink("real.prom", link)
    assert ok("metrics", "--output", link) == ""
    assert os.readlink(link) == "real.prom"  # still a link, to the same file
    with open(real) as f:
        assert "sysvmq_queues " in f.read()
    assert sorted(os.listdir(tmp_path)) == ["real.prom", "sysvmq.prom"]


def test_output_to_a_fifo_or_a_device_writes_to_it(tmp_path: "os.PathLike[str]") -> None:
    fifo = os.path.join(tmp_path, "fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # there, so that the command's open does not wait
    try:
        assert ok("metrics", "--output", fifo) == ""
        got = os.read(reader, 1 << 20).decode()
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not renamed over with a regular file
    assert "sysvmq_queues " in got
    # As `--output /dev/stdout`, without touching the real one: a link to this process's standard output.
    stdout = os.path.join(tmp_path, "stdout")
    os.symlink("/proc/self/fd/1", stdout)
    printed = ok("metrics", "--output", stdout)
    assert os.readlink(stdout) == "/proc/self/fd/1"
    assert "sysvmq_queues " in printed
    assert sorted(os.listdir(tmp_path)) == ["fifo", "stdout"]


def test_output_into_a_missing_directory_fails_in_one_line(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "no-such-dir", "sysvmq.prom")
    proc = run("metrics", "--output", path)
    assert proc.returncode == 1  # another error: not 3, which says a queue was not found
    assert proc.stderr == f"sysvmq metrics: cannot write {path}: No such file or directory\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
def test_a_queue_we_may_not_read_is_still_listed(make_queue: Callable[..., SysVMQ]) -> None:
    q = make_queue(mode=0o600)  # root's; uid 65534 may neither read nor stat it
    q.send(b"secret" * 10, type=3)
    # The child imports and parses `sysvmq metrics` first (the interpreter's
    # files may not be readable by uid 65534), drops every group and its uid,
    # shows it may not stat the queue, then runs the command's code.
    code = """
        import io, json, os, sys
        import sysvmq
        from sysvmq import _cli, _metrics

        args = _cli.parser().parse_args(["metrics"])
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        try:
            sysvmq.SysVMQ.attach(int(sys.argv[1])).stats()
            denied = False
        except sysvmq.QueuePermissionError:
            denied = True
        out = io.StringIO()
        _metrics.cmd_metrics(args, out)
        print(json.dumps({"uid": os.getuid(), "groups": os.getgroups(), "denied": denied, "text": out.getvalue()}))
    """
    child = json.loads(run_python(code, str(q.id)).stdout)
    assert (child["uid"], child["groups"], child["denied"]) == (65534, [], True)
    samples, _ = parse_text(child["text"])
    st = q.stats()
    for name, field in PER_QUEUE.items():
        assert series_of(samples, name, q.id) == {expected_labels(st, ROOT): getattr(st, field)}, name


@pytest.mark.parametrize("command", ["top", "metrics", "exporter"])
def test_help_reads_well(command: str) -> None:
    out = ok(command, "--help")
    assert out.startswith(f"usage: sysvmq {command}")
    assert "exit status" in out
