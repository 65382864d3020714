"""``sysvmq exporter``: the families of ``sysvmq metrics`` served on /metrics with prometheus_client.

prometheus_client is an optional extra (``pip install 'sysvmq[metrics]'``),
imported only when the command runs, so the library and the other commands
never need it. Each scrape is one ``snapshot()``: there is no
cache, so what Prometheus stores is what the kernel said at scrape time.
"""

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any, Iterator, Optional, TextIO, Tuple

from ._metrics import families, snapshot

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_LISTEN",
    "INSTALL_HINT",
    "parse_listen",
    "SysVMQCollector",
    "serve",
    "cmd_exporter",
    "exporter_arguments",
]

# 9100-9999 and the range above 10000 are the exporters' registry on the
# Prometheus wiki ("Default port allocations"); 9100-9999 has been full since
# 2023 and new entries land just above 10000. 21100 is outside both, below
# Linux's ephemeral ports (32768-60999, so no outgoing connection can hold it)
# and has no entry in /etc/services.
DEFAULT_PORT = 21100
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"

INSTALL_HINT = "sysvmq exporter needs prometheus_client: pip install 'sysvmq[metrics]'"


def parse_listen(text: str) -> Tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets, as [::1]:21100) as (host, port).

    Raises:
        argparse.ArgumentTypeError: not of that form, or the port is not 0 to 65535.
    """
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (as 127.0.0.1:{DEFAULT_PORT})")
    return host, int(port)


class SysVMQCollector:
    """A prometheus_client collector: one kernel snapshot per collect()."""

    def __init__(self, metrics_core: Any) -> None:
        self._gauge = metrics_core.GaugeMetricFamily

    def collect(self) -> Iterator[Any]:
        for fam in families(snapshot()):
            gauge = self._gauge(fam.name, fam.help, labels=list(fam.labels))
            for values, value in fam.samples:
                gauge.add_metric(list(values), value)
            yield gauge


def _prometheus_client() -> Tuple[Any, Any, Any]:
    try:
        import prometheus_client
        import prometheus_client.core
        import prometheus_client.registry
    except ImportError:
        from ._cli import CommandError  # imported here: _cli imports this module

        raise CommandError(INSTALL_HINT) from None
    return prometheus_client, prometheus_client.core, prometheus_client.registry


def serve(host: str, port: int) -> Tuple[Any, threading.Thread]:
    """Start serving /metrics on host:port (port 0: any free port); returns (server, its thread).

    Raises:
        CommandError: prometheus_client is not installed (the message says how to install it).
        OSError: the address cannot be bound (in use, or not this host's).
    """
    client, core, registry_module = _prometheus_client()
    # A registry of our own: the default one would add the exporter's own
    # process and platform metrics, which say nothing about queues.
    registry = registry_module.CollectorRegistry(auto_describe=False)
    registry.register(SysVMQCollector(core))
    server, thread = client.start_http_server(port, addr=host, registry=registry)
    return server, thread


class _Stop(Exception):
    pass


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise _Stop


def cmd_exporter(args: argparse.Namespace, out: TextIO) -> None:
    host, port = args.listen
    try:
        server, thread = serve(host, port)
    except OSError as exc:
        # Name the address: "Address already in use" alone does not say which.
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise type(exc)(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
    bound = server.server_address
    where = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    # stderr: a supervisor's log, and the test's way to learn a port 0 became.
    print(f"sysvmq exporter: serving http://{where}:{bound[1]}/metrics", file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while thread.is_alive():
            thread.join(1.0)
    except _Stop:
        pass  # SIGTERM is how a service manager stops us: a clean exit, 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()


def exporter_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        help=f"the address to serve on (default {DEFAULT_LISTEN}: this host only; 0.0.0.0:{DEFAULT_PORT} for all)",
    )
