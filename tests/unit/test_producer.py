"""The producer's partitioner puts a key where every other Kafka client would."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from agentbus.bus.producer import KeyPartitioner

# murmur2 of these keys as the Java client computes it (Kafka's own UtilsTest), signed 32-bit
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
}


def test_a_key_lands_on_the_java_clients_partition() -> None:
    part = KeyPartitioner()
    for partitions in (1, 3, 6, 12, 64):
        everything = list(range(partitions))
        for key, h in JAVA_MURMUR2.items():
            expected = (h & 0x7FFFFFFF) % partitions  # Utils.toPositive(murmur2(key)) % numPartitions
            assert part(key, everything, everything) == expected
            assert part(key, everything, everything) == expected  # the remembered hash gives the same


def test_same_partition_as_aiokafkas_default_for_any_key() -> None:
    rnd = random.Random(7)
    part = KeyPartitioner(keys=64)  # fewer slots than keys: evicted hashes are recomputed the same
    default = DefaultPartitioner()
    keys = [f"tenant-{rnd.randrange(50)}/webhook/chat-{rnd.randrange(10_000)}".encode() for _ in range(2_000)]
    everything = list(range(6))
    for key in keys + keys[::-1]:
        assert part(key, everything, [1, 2]) == default(key, everything, [1, 2])


def test_no_key_goes_to_an_available_partition() -> None:
    part = KeyPartitioner()
    for _ in range(50):
        assert part(None, [0, 1, 2, 3], [1, 3]) in (1, 3)
        assert part(None, [0, 1, 2, 3], []) in (0, 1, 2, 3)
