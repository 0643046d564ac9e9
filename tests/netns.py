"""Network namespaces standing in for separate machines on a private network.

A `Network` is one switch (a Linux bridge in a namespace of its own) and the machines
plugged into it (a namespace each, joined to the bridge by a veth pair). The root
namespace has no port on the bridge, so traffic between machines stays among them:
a test can put the control plane, media workers and clients on machines of their own
and know that what reaches a worker came over that network.

Processes run on a machine through `Machine.popen` (`ip netns exec`, which also
bind-mounts the machine's `/etc/netns/<ns>/hosts`, so every machine's name resolves).
Coroutines run on a machine through `in_namespace` or a `NamespaceThread`: a thread
that enters the machine's network and mount namespaces before starting its event loop,
so every socket it opens (aiohttp clients, aiortc peer connections) is the machine's.

Everything a Network creates is removed on exit, also when the test failed halfway; a
run that crashed before its exit leaves namespaces behind, and the next Network sweeps
those whose creating process is gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

# Every namespace this module creates is named PREFIX-<creating pid>-<token>-<role>: the
# pid tells the sweeper whether its creator is still alive.
PREFIX = "nxnet"
NETNS_DIR = Path("/var/run/netns")
ETC_NETNS = Path("/etc/netns")

# os.setns and os.unshare arrive in Python 3.12.
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MS_BIND = 0x1000

_MACHINE_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_OWNED_NAME = re.compile(rf"{PREFIX}-(\d+)-[0-9a-f]+-[a-z0-9-]+")
# The machine's end of its veth pair, and the switch's bridge; each lives only inside its
# own namespace, so these short names cannot clash with the host's or another run's.
MACHINE_IFACE = "eth0"
BRIDGE = "br0"


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, or no `ip`); tests must fail, not skip."""


class NetnsError(RuntimeError):
    """An `ip` command failed; the message holds its command line and stderr."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def check_available() -> None:
    """Raise NetnsUnavailable, saying what to do, unless this process can make namespaces."""
    if os.geteuid() != 0:
        raise NetnsUnavailable(
            "network-namespace tests need root (they create namespaces, veths and a bridge);"
            " run them as root"
        )
    if shutil.which("ip") is None:
        raise NetnsUnavailable(
            "network-namespace tests need the `ip` command: install Debian's iproute2"
            " (`make unit` or `make heavy` installs it)"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespaces() -> list[str]:
    """The names of the namespaces `ip netns` knows."""
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(namespace: str) -> None:
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _remove_namespace(namespace: str) -> None:
    # A namespace outlives `ip netns del` while a process is in it, and with it its veths.
    _kill_namespace_processes(namespace)
    if (NETNS_DIR / namespace).exists():
        _ip("netns", "del", namespace)
    shutil.rmtree(ETC_NETNS / namespace, ignore_errors=True)


def sweep_leftovers() -> list[str]:
    """Remove this module's namespaces (and /etc/netns dirs) whose creating process is
    gone, left by a run that crashed before its Network's exit; return their names."""
    names = set(namespaces())
    if ETC_NETNS.is_dir():
        names.update(p.name for p in ETC_NETNS.iterdir())
    swept = []
    for name in sorted(names):
        match = _OWNED_NAME.fullmatch(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        _remove_namespace(name)
        swept.append(name)
    return swept


def _host_networks() -> list[ipaddress.IPv4Network]:
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    networks = []
    for route in routes:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.IPv4Network(route.get("dst", ""), strict=False))
    return networks


def _pick_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 the host has no route into, so an address of a machine never
    means one of the host's neighbours."""
    taken = _host_networks()
    for _ in range(100):
        candidate = ipaddress.IPv4Network(
            f"10.{64 + secrets.randbelow(190)}.{secrets.randbelow(256)}.0/24"
        )
        if not any(candidate.overlaps(net) for net in taken if net.prefixlen > 0):
            return candidate
    raise NetnsError("found no 10.x.y.0/24 clear of the host's routes")


class Machine:
    """One namespace on the Network: a name every machine resolves, one address."""

    def __init__(self, network: Network, name: str, namespace: str, address: str, port: str):
        self.network = network
        self.name = name
        self.namespace = namespace
        self.address = address
        self.port = port  # the switch's end of this machine's veth pair
        self.names: dict[str, str] = {}  # more names this machine resolves: name -> address
        self._processes: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"Machine({self.name!r}, {self.address})"

    def popen(
        self, argv: Sequence[str], env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start argv on this machine; the Network terminates it (and its process group)
        on exit."""
        kwargs.setdefault("start_new_session", True)
        process: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *argv], env=env, **kwargs
        )
        self._processes.append(process)
        return process

    def run(
        self, argv: Sequence[str], timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run argv on this machine to completion, output captured as text."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv], timeout=timeout, **kwargs
        )

    def resolve(self, name: str, address: str) -> None:
        """On this machine, ``name`` resolves to ``address``, as its DNS would answer."""
        self.names[name] = address
        self.network._write_hosts()

    def cut(self) -> None:
        """Unplug this machine from the switch: it keeps running but nothing reaches it
        and nothing it sends arrives."""
        _ip("-n", self.network.switch, "link", "set", self.port, "down")

    def restore(self) -> None:
        """Plug this machine back into the switch."""
        _ip("-n", self.network.switch, "link", "set", self.port, "up")

    def thread(self) -> NamespaceThread:
        """An event loop on this machine that lives until closed or the Network exits."""
        return NamespaceThread(self)

    def _stop_processes(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._processes.clear()


class Network:
    """A switch and the machines on it; a sync context manager (also fine in async tests:
    creating and removing namespaces blocks for a few milliseconds)."""

    def __init__(self) -> None:
        check_available()
        sweep_leftovers()
        self._token = secrets.token_hex(3)
        self.subnet = _pick_subnet()
        self.switch = self._namespace("switch")
        self.machines: dict[str, Machine] = {}
        self._threads: list[NamespaceThread] = []
        self._lock = threading.Lock()
        self._entered = False
        self._closed = False

    def _namespace(self, role: str) -> str:
        return f"{PREFIX}-{os.getpid()}-{self._token}-{role}"

    def __enter__(self) -> Network:
        self._entered = True
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.switch, "link", "set", BRIDGE, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raise_errors=exc is None)

    def machine(self, name: str) -> Machine:
        """A new machine called name, plugged into the switch; every machine's name
        resolves to its address on every machine."""
        if not self._entered or self._closed:
            raise RuntimeError("Network.machine() needs an entered, open Network")
        if _MACHINE_NAME.fullmatch(name) is None:
            raise ValueError(f"machine name {name!r}: lowercase letters, digits, '-'; ≤ 20")
        with self._lock:
            if name in self.machines:
                raise ValueError(f"machine {name!r} exists already")
            index = len(self.machines) + 1
            if index > 250:
                raise ValueError("a Network holds at most 250 machines")
            namespace = self._namespace(name)
            address = str(self.subnet.network_address + index)
            machine = Machine(self, name, namespace, address, port=f"p{index}")
            self.machines[name] = machine
        _ip("netns", "add", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        # The veth pair is made inside the switch, its far end sent straight into the
        # machine: neither end ever appears in the root namespace.
        _ip(
            "-n", self.switch, "link", "add", machine.port, "type", "veth",
            "peer", "name", MACHINE_IFACE, "netns", namespace,
        )  # fmt: skip
        _ip("-n", self.switch, "link", "set", machine.port, "master", BRIDGE)
        _ip("-n", self.switch, "link", "set", machine.port, "up")
        _ip(
            "-n", namespace, "addr", "add",
            f"{address}/{self.subnet.prefixlen}", "dev", MACHINE_IFACE,
        )  # fmt: skip
        _ip("-n", namespace, "link", "set", MACHINE_IFACE, "up")
        self._write_hosts()
        return machine

    def _write_hosts(self) -> None:
        local = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        everyone = [f"{m.address} {m.name}" for m in self.machines.values()]
        for machine in self.machines.values():
            # The machine's own names first: the first line naming a host wins.
            own = [f"{address} {name}" for name, address in machine.names.items()]
            text = "\n".join(local + own + everyone) + "\n"
            directory = ETC_NETNS / machine.namespace
            directory.mkdir(parents=True, exist_ok=True)
            # Rewritten in place, not replaced: a running process sees this file through
            # a bind mount of its inode, and so learns of machines added after it started.
            with open(directory / "hosts", "a+") as hosts:
                hosts.seek(0)
                hosts.truncate()
                hosts.write(text)

    def _register(self, thread: NamespaceThread) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the Network is closed")
            self._threads.append(thread)

    def close(self, raise_errors: bool = True) -> None:
        """Stop every thread and process, remove every namespace and /etc/netns dir;
        safe twice. Each step runs even if an earlier one failed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        errors: list[BaseException] = []
        steps: list[Callable[[], None]] = [t.close for t in threads]
        steps += [m._stop_processes for m in self.machines.values()]
        owned = [m.namespace for m in self.machines.values()] + [self.switch]
        steps += [functools.partial(_remove_namespace, ns) for ns in owned]
        for step in steps:
            try:
                step()
            except Exception as exc:  # every step must run; raised below
                errors.append(exc)
        if errors and raise_errors:
            raise NetnsError(f"removing the network left errors: {errors!r}")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _enter(machine: Machine) -> None:
    """Move the calling thread into the machine's network namespace, and into a mount
    namespace of its own where /etc/hosts is the machine's (as `ip netns exec` does), so
    names resolve there too. Threads it starts later (the loop's resolver pool) inherit
    both."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(NETNS_DIR / machine.namespace, os.O_RDONLY)
    try:
        _check(libc.setns(fd, CLONE_NEWNET), f"setns into {machine.namespace}")
    finally:
        os.close(fd)
    _check(libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    # Slave, so the bind mount below never propagates back to the host's /etc/hosts.
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a slave")
    hosts = str(ETC_NETNS / machine.namespace / "hosts").encode()
    _check(libc.mount(hosts, b"/etc/hosts", None, MS_BIND, None), "bind the machine's hosts")


class NamespaceThread:
    """A thread on a machine running an asyncio loop (the standard one: uvloop resolves
    names on a process-wide pool that is not in the namespace) until close()."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self._loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._closed = False
        self._thread = threading.Thread(
            target=self._main, name=f"netns-{machine.name}", daemon=True
        )
        machine.network._register(self)
        self._thread.start()
        self._ready.result(timeout=30)

    def _main(self) -> None:
        try:
            _enter(self.machine)
        except BaseException as exc:
            self._ready.set_exception(exc)
            self._loop.close()
            return
        asyncio.set_event_loop(self._loop)
        self._ready.set_result(None)
        self._loop.run_forever()
        try:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run coro on this thread's loop; in an async test, await it with
        `asyncio.wrap_future(thread.submit(coro))`."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"the namespace thread of {self.machine.name} is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        """Cancel what still runs, stop the loop and wait for the thread; safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)


def in_namespace(
    machine: Machine,
    coroutine_function: Callable[..., Awaitable[T]],
    *args: Any,
    timeout: float = 60,
) -> T:
    """Run coroutine_function(*args) on a fresh loop on machine; return its result or
    raise its exception (TimeoutError after timeout seconds)."""

    async def call() -> T:
        return await asyncio.wait_for(coroutine_function(*args), timeout)

    thread = NamespaceThread(machine)
    try:
        return thread.submit(call()).result()
    finally:
        thread.close()
