"""The command line: ``python -m sysvmq`` (or ``sysvmq``)."""

import argparse
import sys
from typing import List, Optional

from . import __version__, _demo


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sysvmq", description="System V message queues.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="two processes exchange messages through a private queue, with figures")
    demo.add_argument("--messages", type=int, default=100_000, help="messages in the stream (100000)")
    demo.add_argument("--size", type=int, default=64, help="bytes per streamed message (64)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        _demo.run(sys.stdout, messages=args.messages, size=args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
