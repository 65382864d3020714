"""The shapes of the benchmarks: how many messages a call moves, how large a batch is."""

import sysvmq

# Messages each benchmarked round-trip call moves; the report divides by it.
LOOP = 64


def batch_size(size: int) -> int:
    """Messages of ``size`` bytes a default queue holds at once, at most 64: batches never block."""
    return max(1, min(64, sysvmq.limits().msgmnb // max(size, 1)))
