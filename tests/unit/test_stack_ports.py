"""The test stack's port draw (``tests/conftest.py``) stays out of the kernel's ephemeral range.

A CI run failed when MLflow's drawn port (44284, inside Linux's 32768-60999) was taken as a source
port by an outbound connection between the draw and MLflow's bind."""

from __future__ import annotations

import random

from tests.conftest import _GRPC_OFFSET, _PORT_FIELDS, ephemeral_port_range, free_stack_ports


def _all_ports(ports: dict[str, int]) -> list[int]:
    return [q for p in ports.values() for q in (p, p + _GRPC_OFFSET)]


def test_ports_and_twins_are_distinct_and_below_the_linux_default_ephemeral_range():
    for seed in range(20):
        ports = free_stack_ports(random.Random(seed), ephemeral=(32768, 60999))
        assert set(ports) == set(_PORT_FIELDS)
        every = _all_ports(ports)
        assert len(set(every)) == len(every)
        assert all(10000 <= q < 32768 for q in every), every


def test_a_low_ephemeral_range_moves_the_draw_above_it():
    ports = free_stack_ports(random.Random(0), ephemeral=(1024, 40000))
    assert all(40000 < q <= 65535 for q in _all_ports(ports))


def test_the_range_is_read_from_the_kernel_file(tmp_path):
    f = tmp_path / "ip_local_port_range"
    f.write_text("20000\t30000\n")
    assert ephemeral_port_range(f) == (20000, 30000)
    assert ephemeral_port_range(tmp_path / "absent") == (32768, 60999)
