"""Listing learned paths keeps only the newest ``limit`` of a table that may hold 100k."""
import random

from app.api.service import _Smallest


def test_keeps_exactly_the_smallest_keys_in_order():
    rng = random.Random(7)
    keys = [(rng.randrange(50), "10.0.%d.%d" % (rng.randrange(4), rng.randrange(256)))
            for _ in range(2000)]
    for limit in (1, 10, 1000, 5000):
        kept = _Smallest(limit)
        for index, key in enumerate(keys):
            kept.add(key, {"key": key, "index": index})
        assert kept.seen == len(keys)
        assert [item["key"] for item in kept.items()] == sorted(keys)[:limit]


def test_equal_keys_keep_arrival_order_and_never_compare_items():
    kept = _Smallest(3)
    for index in range(5):
        kept.add((1, "a"), {"index": index})  # dicts are not orderable: must not be compared
    assert [item["index"] for item in kept.items()] == [0, 1, 2]
