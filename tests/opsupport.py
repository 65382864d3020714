"""What the operations tests share: reading the Prometheus text format back, and waiting with a deadline."""

import pathlib
import re
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar

from sysvmq import QueueStats

COMMAND = pathlib.Path(sys.executable).parent / "sysvmq"

Labels = Tuple[Tuple[str, str], ...]
T = TypeVar("T")

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# The per-queue families and the QueueStats field each must equal.
PER_QUEUE = {
    "sysvmq_queue_messages": "count",
    "sysvmq_queue_bytes": "size",
    "sysvmq_queue_max_bytes": "max_size",
    "sysvmq_queue_last_send_timestamp_seconds": "last_send_time",
    "sysvmq_queue_last_receive_timestamp_seconds": "last_receive_time",
    "sysvmq_queue_last_change_timestamp_seconds": "last_change_time",
}


def run(*args: str, timeout: float = 60, **kw: Any) -> "subprocess.CompletedProcess[str]":
    """Run the installed ``sysvmq`` command to the end and capture its output as text."""
    return subprocess.run([str(COMMAND), *args], capture_output=True, text=True, timeout=timeout, **kw)


def ok(*args: str) -> str:
    """The standard output of a ``sysvmq`` command that must succeed quietly."""
    proc = run(*args)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    return proc.stdout


def parse_text(text: str) -> Tuple[Dict[str, Dict[Labels, float]], Dict[str, Tuple[str, str]]]:
    """The samples of a text exposition, by name and sorted labels; and each family's (TYPE, HELP)."""
    samples: Dict[str, Dict[Labels, float]] = {}
    meta: Dict[str, Tuple[str, str]] = {}
    helps: Dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            meta[name] = (kind, helps.get(name, ""))
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
            samples.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return samples, meta


def series_of(samples: Dict[str, Dict[Labels, float]], name: str, msqid: int) -> Dict[Labels, float]:
    """The samples of one family that carry ``id="msqid"``."""
    return {labels: v for labels, v in samples.get(name, {}).items() if ("id", str(msqid)) in labels}


def expected_labels(st: QueueStats, owner: str) -> Labels:
    return tuple(sorted([("id", str(st.id)), ("key", f"{st.key:#010x}"), ("owner", owner)]))


def wait_for(what: str, probe: Callable[[], Optional[T]], timeout: float = 30.0, every: float = 0.05) -> T:
    """Call ``probe`` until it returns something other than None, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
