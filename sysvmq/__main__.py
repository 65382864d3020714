"""``python -m sysvmq``: the same as the ``sysvmq`` command (see _cli)."""

from ._cli import run

if __name__ == "__main__":
    run()
