"""Several "hosts" on one machine: Linux network namespaces joined by veth links.

Layout (addresses from 198.18.0.0/15, the range reserved for network test beds, RFC 2544;
every one of them lives in a namespace this harness made, and is gone with it):

    root namespace              core namespace                 host namespaces
    127.0.0.1:5432 PostgreSQL ◀─ relay ─ 198.18.77.1 ─┐
    127.0.0.1:<p>  broker     ◀─ relay ─ 198.18.77.2 ─┼ bridge ─┬─ veth ─ 198.18.77.11  host a
    127.0.0.1:<q>  sink (API) ◀─ relay ─ 198.18.77.3 ─┘         └─ veth ─ 198.18.77.12  host b

The product's services listen on the root namespace's loopback, as on every test machine;
a relay (threads of the test process) accepts on a service address of the core namespace
and connects to the service, so each host reaches PostgreSQL, the broker and the
customer's API over its own veth link and nothing else. Each service has its own address,
so that a host can be cut off from one of them: a **blackhole route** to that address in
the host's namespace drops every packet it sends there, so its connections hang as they
do when a network fails (nothing resets them), until the route is removed. (Kernel packet
filters, ``tc netem`` or iptables, are not available on every machine; routes are.)

Needs root and ``ip`` (iproute2); ``available()`` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

CORE_ADDRESS = "198.18.77.1"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """None when namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed"
    probe = f"osmprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the block's socket calls in ``namespace`` (this thread only), then come back."""
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{namespace}") as target:
        if _libc.setns(target.fileno(), _CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "setns into " + namespace)
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), _CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), "setns back")


@dataclass
class Host:
    name: str  # the namespace
    address: str
    link: str  # its end of the veth pair
    cut_from: set[str] = field(default_factory=set)  # service addresses it cannot reach


class Relay:
    """Accepts on ``address:port`` of the core namespace, pipes to ``127.0.0.1:port``."""

    def __init__(self, core: str, address: str, port: int) -> None:
        self.address = address
        self.port = port
        with inside(core):
            self._listener = socket.create_server((address, port), backlog=128)
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        # The host behind each connection to the service: its local port -> the host's address
        # (the service sees the relay, not the host; a test asks here who sent a request).
        self.peers: dict[int, str] = {}
        threading.Thread(target=self._accept, daemon=True, name=f"relay {port}").start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, peer = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.peers[upstream.getsockname()[1]] = peer[0]
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


class TestNetwork:
    """A core namespace, hosts on a bridge, relays for services; removed by ``close()``."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.prefix = f"osm{os.getpid() % 100000}"
        self.core = f"{self.prefix}core"
        self.hosts: dict[str, Host] = {}
        self.relays: list[Relay] = []
        _sh("ip", "netns", "add", self.core)
        self._in_core("ip", "link", "set", "lo", "up")
        self._in_core("ip", "link", "add", "br0", "type", "bridge")
        self._in_core("ip", "addr", "add", f"{CORE_ADDRESS}/24", "dev", "br0")
        self._in_core("ip", "link", "set", "br0", "up")

    def _in_core(self, *args: str) -> None:
        _sh("ip", "netns", "exec", self.core, *args)

    def add_host(self, name: str) -> Host:
        number = len(self.hosts) + 1
        namespace, link, peer = (
            f"{self.prefix}{name}",
            f"{self.prefix}h{number}",
            f"{self.prefix}c{number}",
        )
        host = Host(name=namespace, address=f"198.18.77.{10 + number}", link=link)
        _sh("ip", "netns", "add", namespace)
        _sh("ip", "link", "add", link, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", link, "netns", namespace)
        _sh("ip", "link", "set", peer, "netns", self.core)
        self._in_core("ip", "link", "set", peer, "master", "br0")
        self._in_core("ip", "link", "set", peer, "up")
        exec_ = ("ip", "netns", "exec", namespace)
        _sh(*exec_, "ip", "link", "set", "lo", "up")
        _sh(*exec_, "ip", "addr", "add", f"{host.address}/24", "dev", link)
        _sh(*exec_, "ip", "link", "set", link, "up")
        self.hosts[name] = host
        return host

    def relay(self, port: int) -> str:
        """Make ``127.0.0.1:port`` reachable from the hosts at an address of its own;
        returns that address."""
        address = f"198.18.77.{len(self.relays) + 1}"
        if self.relays:  # the first one is the bridge's own address
            self._in_core("ip", "addr", "add", f"{address}/24", "dev", "br0")
        self.relays.append(Relay(self.core, address, port))
        return address

    def relay_of(self, address: str) -> Relay:
        return next(r for r in self.relays if r.address == address)

    def cut(self, host: Host, address: str | None = None) -> None:
        """Drop every packet ``host`` sends to the service at ``address`` (None: to all)."""
        targets = [address] if address else [r.address for r in self.relays]
        for target in targets:
            if target not in host.cut_from:
                _sh(
                    "ip",
                    "netns",
                    "exec",
                    host.name,
                    "ip",
                    "route",
                    "add",
                    "blackhole",
                    f"{target}/32",
                )
                host.cut_from.add(target)

    def heal(self, host: Host) -> None:
        for target in sorted(host.cut_from):
            _sh("ip", "netns", "exec", host.name, "ip", "route", "del", "blackhole", f"{target}/32")
        host.cut_from.clear()

    def command(self, host: Host, args: list[str]) -> list[str]:
        """``args`` to run as a process of ``host``."""
        return ["ip", "netns", "exec", host.name, *args]

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.name], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.core], check=False, capture_output=True)
