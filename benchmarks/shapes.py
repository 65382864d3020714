"""The shapes of the benchmarks: how many messages a call moves, how large a batch is."""

import sysvmq

# Messages each benchmarked round-trip call moves; the report divides by it.
LOOP = 64


def batch_size(size: int) -> int:
    """Messages of ``size`` bytes a default queue holds at once, at most 64: batches never block."""
    return max(1, min(64, sysvmq.limits().msgmnb // max(size, 1)))


def messages_per_call(impl: str, size: int) -> int:
    """Messages one benchmarked round-trip call of ``impl`` moves: LOOP, or whole batches within it."""
    if impl == "batch_floor" or impl.startswith("sysvmq_many"):
        return LOOP // batch_size(size) * batch_size(size)
    return LOOP
