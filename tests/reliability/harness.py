"""What the reliability tests share: self-checking messages, and worker processes that log what they get.

A message is a header (producer, sequence, crc32 of the payload, payload
length) and a payload of random bytes: any loss, duplicate, reordering or
corruption shows when the receiver checks it.
"""

import os
import random
import struct
import zlib
from typing import Dict, List, Tuple

HEADER = struct.Struct("=HIII")  # producer, sequence, crc32, payload length
WAKE = 0xFFFF  # the producer id of a message that only wakes a consumer
POOL = os.urandom(1 << 16)

Received = Tuple[int, int, int]  # (producer, type, sequence)


def make(producer: int, seq: int, rng: random.Random, max_payload: int) -> bytes:
    n = rng.randint(0, max_payload)
    start = rng.randint(0, len(POOL) - n)
    payload = POOL[start : start + n]
    return HEADER.pack(producer, seq, zlib.crc32(payload), n) + payload


def check(data: bytes) -> Tuple[int, int]:
    """(producer, sequence) of an intact message; AssertionError if it was damaged."""
    producer, seq, crc, n = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    assert len(payload) == n, f"message {producer}:{seq} has {len(payload)} payload bytes, header says {n}"
    assert zlib.crc32(payload) == crc, f"message {producer}:{seq} is corrupt (crc32 differs)"
    return producer, seq


def plan(producer: int, count: int, types: int, seed: int) -> List[int]:
    """The type of each of a producer's messages, the same in the producer and the checker."""
    rng = random.Random(seed * 1000 + producer)
    return [rng.randint(1, types) for _ in range(count)]


def audit(expected: Dict[int, List[int]], per_consumer: List[List[Received]]) -> Dict[str, int]:
    """Exactly once, and in order per producer and type within each consumer; returns figures."""
    seen: Dict[Tuple[int, int], int] = {}
    duplicates = misplaced = disordered = 0
    for got in per_consumer:
        last: Dict[Tuple[int, int], int] = {}
        for producer, mtype, seq in got:
            if (producer, seq) in seen:
                duplicates += 1
            seen[(producer, seq)] = mtype
            if expected[producer][seq] != mtype:
                misplaced += 1
            if last.get((producer, mtype), -1) > seq:
                disordered += 1
            last[(producer, mtype)] = seq
    total = sum(len(types) for types in expected.values())
    return {
        "sent": total,
        "received": len(seen),
        "lost": total - len(seen),
        "duplicates": duplicates,
        "wrong_type": misplaced,
        "out_of_order": disordered,
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
