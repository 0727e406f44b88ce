"""Ports for the local platform's servers (runtime.local.postgres.free_port): each server binds
its port later, so one process must never be handed the same port twice."""

from __future__ import annotations

import socket

import pytest

from runtime.local.postgres import free_port, hold_port

pytestmark = pytest.mark.unit


def test_given_many_picks_when_ports_are_chosen_then_none_repeats_and_each_is_bindable() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_given_a_held_port_when_held_again_then_it_is_refused() -> None:
    port = free_port()
    assert hold_port(port) is False
