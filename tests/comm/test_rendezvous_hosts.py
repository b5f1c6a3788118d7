"""Where ranks on several hosts meet: the site's interface, else the route to rank 0, never loopback.
(The cross-host case itself runs on the emulated cluster: tests/cluster/test_comm.py.)"""

from __future__ import annotations

import pytest

from deeprc.comm import rendezvous as rv


@pytest.fixture(autouse=True)
def _no_site_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        monkeypatch.setenv(var, "")  # recorded, so what pin_gloo_interface sets is undone after the test
        monkeypatch.delenv(var)


@pytest.mark.parametrize("gloo,nccl,want", [("eth1,eth0", None, "eth1"), (None, "^docker,lo", None),
                                            (None, "=ib0", "ib0"), (None, None, None)])
def test_site_interface(monkeypatch: pytest.MonkeyPatch, gloo, nccl, want) -> None:  # noqa: ANN001
    if gloo:
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", gloo)
    if nccl:
        monkeypatch.setenv("NCCL_SOCKET_IFNAME", nccl)
    assert rv.site_interface() == want


def test_interfaces_and_route() -> None:
    assert rv.interfaces()["lo"] == "127.0.0.1"
    assert rv.route_interface("127.0.0.1") == "lo"
    assert rv.route_interface("no-such-host.invalid") is None


def test_my_address_prefers_the_site_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rv.my_address(True) == "127.0.0.1"
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    assert rv.my_address(False) == "127.0.0.1"  # the site's interface, whatever the host name says


def test_my_address_never_loopback_across_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    external = {n: a for n, a in rv.interfaces().items() if not rv.is_loopback(a)}
    if not external:
        pytest.skip("this host has no non-loopback interface")
    monkeypatch.setattr(rv.socket, "gethostname", lambda: "localhost")  # a name that resolves to loopback
    assert rv.my_address(False) in external.values()


def test_pin_gloo_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    assert rv.pin_gloo_interface("127.0.0.1", single_node=True) is None
    assert "GLOO_SOCKET_IFNAME" not in os.environ  # one node: Gloo's default (loopback) is fine
    external = [n for n, a in rv.interfaces().items() if not rv.is_loopback(a)]
    if external:
        # rank 0's name resolves to loopback here (its own node): bind to a real interface instead
        assert rv.pin_gloo_interface("localhost", single_node=False) == external[0]
        assert os.environ["GLOO_SOCKET_IFNAME"] == external[0]
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "ib0")
    assert rv.pin_gloo_interface("node1", single_node=False) == "ib0"  # the site's choice stays
