"""Ports of the embedded stack: the object store's HTTP ports, their gRPC twins and every other listener's
port come from disjoint ranges below the ephemeral range, so no port picked for one can be the other's (a
gateway port picked before the stack started was once a SeaweedFS gRPC twin, and the stack never got healthy)."""

from __future__ import annotations

from streamscribe.stack import ports, seaweed

EPHEMERAL_FIRST = 32768


def test_the_port_ranges_are_disjoint_and_below_the_ephemeral_range() -> None:
    http = range(*seaweed.PORT_RANGE)
    grpc = range(seaweed.PORT_RANGE[0] + seaweed.GRPC_OFFSET, seaweed.PORT_RANGE[1] + seaweed.GRPC_OFFSET)
    listen = range(*ports.LISTEN_RANGE)
    for a, b in ((http, grpc), (http, listen), (grpc, listen)):
        assert not set(a) & set(b), (a, b)
    assert max(grpc) < EPHEMERAL_FIRST and max(listen) < EPHEMERAL_FIRST


def test_picked_ports_stay_in_their_ranges() -> None:
    for _ in range(20):
        assert ports.LISTEN_RANGE[0] <= ports.free_port() < ports.LISTEN_RANGE[1]
    picked = seaweed.pick_ports()
    assert len(set(picked.values())) == len(picked)
    assert all(seaweed.PORT_RANGE[0] <= p < seaweed.PORT_RANGE[1] for p in picked.values()), picked
