"""make load's arguments (devstack/load.py): the mix, the loopback rule, percentiles."""

from __future__ import annotations

import pytest

from devstack.load import parse_mix, percentile, require_loopback


def test_the_mix_gives_each_kind_its_weight() -> None:
    assert parse_mix("reads:6,orders:3,cancels:1") == {"reads": 6, "orders": 3, "cancels": 1}
    assert parse_mix("orders") == {"reads": 0, "orders": 1, "cancels": 0}


@pytest.mark.parametrize("bad", ["", "reads:0", "writes:1", "reads:x", "orders:-1"])
def test_a_bad_mix_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_mix(bad)


@pytest.mark.parametrize("ok", ["127.0.0.1:8500", "127.8.0.1:1", "localhost:8500", "[::1]:8500"])
def test_loopback_consul_addresses_are_accepted(ok: str) -> None:
    assert require_loopback(ok) == ok


@pytest.mark.parametrize("bad", ["10.0.0.1:8500", "consul.example:8500", "0.0.0.0:8500", "8500"])
def test_other_consul_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        require_loopback(bad)


def test_percentiles_of_sorted_latencies() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) in (50.0, 51.0)
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None
