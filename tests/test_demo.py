"""The README's first command: ``python -m sysvmq demo`` runs, reports and cleans up."""

import re
import subprocess
import sys

from support import exists, note_created

import sysvmq


def test_demo_exchanges_messages_and_removes_its_queue() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sysvmq", "demo", "--messages", "2000", "--size", "32"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    msqid = int(re.search(r"created private queue id (\d+)", out).group(1))  # type: ignore[union-attr]
    note_created(msqid)  # the session removes it if the demo did not
    assert out.count("-> pong from pid") == 3
    assert "the worker received 2,000 messages, 64,000 bytes" in out
    assert re.search(r"[\d,]+ messages/s", out)
    assert re.search(r"median [\d.]+ us", out)
    assert f"removed queue {msqid}" in out
    assert not exists(msqid)


def test_version_flag() -> None:
    proc = subprocess.run([sys.executable, "-m", "sysvmq", "--version"], capture_output=True, text=True)
    assert proc.stdout.strip() == f"sysvmq {sysvmq.__version__}"
