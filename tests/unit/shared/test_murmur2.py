"""Keymoment's murmur2 picks the partition the Kafka producers' default partitioner picks."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2 as reference
from hypothesis import given, strategies as st

from shared.kafka import _keyed_partition, murmur2


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference(data)


@given(st.binary(min_size=1, max_size=80), st.integers(1, 64))
def test_a_key_lands_where_the_default_partitioner_puts_it(key: bytes, partitions: int) -> None:
    every = tuple(range(partitions))
    assert _keyed_partition(key, every) == DefaultPartitioner()(key, list(every), None)

