"""``sysvmq exporter``: /metrics over HTTP, scraped by a real Prometheus server and read back through its API.

Every address is on the loopback interface. Every assertion looks only at the
series of queues this test made (by id): other programs may have queues.
"""

import importlib.util
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from opsupport import COMMAND, PER_QUEUE, expected_labels, parse_text, series_of, wait_for

import sysvmq
from sysvmq import SysVMQ, _exporter

needs_client = pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None,
    reason="prometheus_client is not installed (the metrics extra: pip install 'sysvmq[metrics]')",
)

ROOT = pwd.getpwuid(0).pw_name


def _start(*args: str) -> Tuple["subprocess.Popen[str]", str]:
    """Start ``sysvmq exporter`` and return it with the URL it says it serves (read from its stderr)."""
    proc = subprocess.Popen([str(COMMAND), "exporter", *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], 30)
    line = proc.stderr.readline() if ready else ""
    if not line.startswith("sysvmq exporter: serving "):
        proc.kill()
        rest = proc.communicate(timeout=30)[1]
        raise AssertionError(f"the exporter did not start: {line}{rest}")
    return proc, line.split()[-1]


def _stop(proc: "subprocess.Popen[str]") -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def exporter() -> Iterator[str]:
    """The /metrics URL of an exporter on a free loopback port."""
    proc, url = _start("--listen", "127.0.0.1:0")
    try:
        yield url
    finally:
        _stop(proc)


def _get(url: str) -> Tuple[str, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers["Content-Type"], response.read().decode()


@needs_client
def test_the_exporter_serves_what_stats_says(exporter: str, make_queue: Callable[..., SysVMQ]) -> None:
    q = make_queue()
    q.send_many([b"a" * 10, b"b" * 20])
    content_type, text = _get(exporter)
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    samples, meta = parse_text(text)
    st = q.stats()
    for name, field in PER_QUEUE.items():
        assert series_of(samples, name, q.id) == {expected_labels(st, ROOT): getattr(st, field)}, name
        assert meta[name][0] == "gauge"
    assert samples["sysvmq_limit_msgmni"] == {(): sysvmq.limits().msgmni}
    # A later scrape reads the kernel again: nothing is cached.
    q.receive()
    samples, _ = parse_text(_get(exporter)[1])
    assert series_of(samples, "sysvmq_queue_messages", q.id) == {expected_labels(q.stats(), ROOT): 1}


@needs_client
def test_sigterm_stops_it_with_status_0() -> None:
    proc, url = _start("--listen", "127.0.0.1:0")
    try:
        _get(url)
    finally:
        status = _stop(proc)
    assert status == 0


@needs_client
def test_an_address_in_use_fails_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [str(COMMAND), "exporter", "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 1
    assert proc.stderr == f"sysvmq exporter: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("listen", ["127.0.0.1", "localhost:", ":21100", "127.0.0.1:65536", "127.0.0.1:x"])
def test_a_listen_address_without_host_or_port_is_a_usage_error(listen: str) -> None:
    proc = subprocess.run([str(COMMAND), "exporter", "--listen", listen], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "is not HOST:PORT" in proc.stderr


@needs_client
def test_the_default_serves_this_host_only() -> None:
    port = _exporter.DEFAULT_PORT
    proc = subprocess.Popen([str(COMMAND), "exporter"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        line = proc.stderr.readline() if ready else ""
        if "in use" in line:
            pytest.skip(f"port {port} is in use on this host: {line.strip()}")
        assert line == f"sysvmq exporter: serving http://127.0.0.1:{port}/metrics\n"
        listening = _listeners(port)
        assert listening == ["127.0.0.1"], listening
        assert _get(f"http://127.0.0.1:{port}/metrics")[1].startswith("# HELP sysvmq_queue_messages ")
    finally:
        _stop(proc)


def _listeners(port: int) -> List[str]:
    """The local addresses of every TCP socket listening on ``port`` (/proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    if len(address) == 8:
                        found.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                    else:
                        found.append(address)
    return found


def test_without_prometheus_client_it_says_how_to_install_it() -> None:
    # The child hides prometheus_client (None in sys.modules makes its import fail), as a plain install lacks it.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None
        from sysvmq._cli import main
        sys.exit(main(["exporter", "--listen", "127.0.0.1:0"]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "sysvmq exporter: sysvmq exporter needs prometheus_client: pip install 'sysvmq[metrics]'\n"


# -- a real Prometheus server --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A Prometheus server on 127.0.0.1 that scrapes one target every second, in a directory of its own."""

    def __init__(self, binary: str, target: str, where: str) -> None:
        self.port = _free_port()
        config = os.path.join(where, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                f"scrape_configs:\n  - job_name: sysvmq\n    static_configs:\n      - targets: ['{target}']\n"
            )
        self.log = open(os.path.join(where, "prometheus.log"), "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(where, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            doc = json.loads(response.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def ready(self) -> Optional[bool]:
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as response:
                return True if response.status == 200 else None
        except OSError:
            return None

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            self.log.close()


def _stored(prom: Prometheus, msqid: int) -> Dict[str, Tuple[Dict[str, str], float]]:
    """What Prometheus holds now for one queue: family name -> (labels, value)."""
    result = prom.api("query", query=f'{{__name__=~"sysvmq_queue_.+",id="{msqid}"}}')["result"]
    return {s["metric"]["__name__"]: (s["metric"], float(s["value"][1])) for s in result}


def _matches_stats(prom: Prometheus, q: SysVMQ) -> Optional[Dict[str, Tuple[Dict[str, str], float]]]:
    stored = _stored(prom, q.id)
    st = q.stats()
    want = {name: float(getattr(st, field)) for name, field in PER_QUEUE.items()}
    return stored if {name: value for name, (_, value) in stored.items()} == want else None


@pytest.mark.slow
@needs_client
def test_prometheus_scrapes_the_exporter_and_stores_what_stats_says(
    make_queue: Callable[..., SysVMQ], tmp_path: "os.PathLike[str]"
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the Prometheus server is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    q = make_queue()
    q.send_many([b"x" * 100, b"y" * 200, b"z" * 300])
    q.receive()
    exporter, url = _start("--listen", "127.0.0.1:0")
    prom = Prometheus(binary, urllib.parse.urlsplit(url).netloc, str(tmp_path))
    try:
        wait_for("Prometheus to be ready", prom.ready, timeout=60)
        stored = wait_for("Prometheus to store the queue's series as stats() has them", lambda: _matches_stats(prom, q))
        st = q.stats()
        for labels, _ in stored.values():
            assert labels["key"] == f"{st.key:#010x}" and labels["owner"] == ROOT and labels["job"] == "sysvmq"
        limits = prom.api("query", query="sysvmq_limit_msgmni")["result"]
        assert [float(s["value"][1]) for s in limits] == [sysvmq.limits().msgmni]
        queues = prom.api("query", query="sysvmq_queues")["result"]
        assert len(queues) == 1 and float(queues[0]["value"][1]) >= 1
        # The queue changes; a later scrape brings the new figures.
        q.send(b"w" * 50)
        q.receive()
        q.receive()
        assert q.stats().count == 1
        wait_for("Prometheus to store the queue's new figures", lambda: _matches_stats(prom, q))
        health = prom.api("targets")["activeTargets"]
        assert [t["health"] for t in health] == ["up"]
    finally:
        prom.stop()
        _stop(exporter)
