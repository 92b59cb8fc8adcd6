"""ARV's production shape as separate OS processes on a fresh data folder, and the faults to inject.

Every part runs in its own process group (API, one worker per queue group, Beat), against a database
of its own, a private Redis that loses everything on restart, a moto S3 server behind a relay that
can be cut, a local SMTP server and a local Bot API server. The helpers kill or stop a part, restart
Redis empty, terminate every database connection, cut storage, skew a part's clock with libfaketime
and put a worker in a network namespace of its own that can be cut from the rest.

Only loopback and the private addresses of this module's own namespaces are ever touched; every wait
has a deadline.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.support.mail_server import MailServer, smtp_server
from tests.support.servers import (
    POSTGRES_ADMIN_URL,
    free_port,
    moto_s3_server,
    postgres_database,
    wait_for_port,
)
from tests.support.telegram_server import FakeBotApi, fake_bot_api

REPO = Path(__file__).resolve().parents[2]
BOT_TOKEN = "424242:FAULT-SUITE"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")

# Short leases and sweeps so a lost worker's job comes back in seconds; a key prefix because the
# prefix is where a recovery bug once hid.
FAST_RECOVERY = {
    "ARV_JOB_LEASE_S": "10",
    "ARV_JOB_HEARTBEAT_S": "2",
    "ARV_SWEEP_INTERVAL_S": "3",
    "ARV_JOB_REPUBLISH_AFTER_S": "10",
    "ARV_JOB_RETRY_WINDOW_S": "300",
    "ARV_JOB_RETRY_MAX_S": "10",
    "ARV_ORPHAN_GRACE_S": "5",
    "ARV_EXPIRY_CHECK_INTERVAL_S": "5",
    "ARV_NOTIFICATION_FAN_OUT_INTERVAL_S": "5",
}

WORKER_QUEUES = {"markers": "markers", "notifications": "notifications,default,videos"}
# How long a part gets to say it is ready, and to exit after SIGTERM.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def arv_command() -> list[str]:
    """The `arv` entry point of this virtualenv, or the module when the script is absent."""
    script = Path(sys.executable).with_name("arv")
    return [str(script)] if script.exists() else [sys.executable, "-m", "arv"]


@dataclass
class Part:
    """One process of the platform, in its own process group, its output in `log_path`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_line: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Part:
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        """The end of the log without the one-character lines Celery's redirected stderr makes of a
        traceback."""
        kept = [line for line in self.log().splitlines() if line.split("celery.redirected:")[-1].strip(" ^:")]
        return "\n".join(kept[-lines:])

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the part's log shows `ready_line` since its last start (or it has lived a second)."""
        assert self.proc is not None
        start_mark = self.log().rfind("==== start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.ready_line is None:
                time.sleep(1.0)
                if self.proc.poll() is None:
                    return
            elif self.ready_line in self.log()[start_mark:]:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")

    def signal_group(self, signum: int) -> None:
        """Send `signum` to the part's whole process group (the worker and its pool children)."""
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """What a crash or an OOM kill looks like: SIGKILL to the part and all its children."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the group, then SIGKILL if it has not exited within `timeout` seconds."""
        if not self.alive:
            return
        self.signal_group(signal.SIGTERM)
        self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """After a SIGTERM: wait for the exit, SIGKILL if it has not come within `timeout` seconds."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Pool children that outlived their parent still belong to the group.
        self.signal_group(signal.SIGKILL)


class TcpRelay:
    """Forwards TCP connections from `listen` to `target`; `cut()` refuses new connections and
    drops the open ones (the service looks down), `restore()` listens again on the same port."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen_addr = listen
        self.target = target
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self._stopping = threading.Event()
        self.restore()

    @property
    def port(self) -> int:
        return self.listen_addr[1]

    def restore(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(self.listen_addr)
            server.listen(128)
            server.settimeout(0.5)
            self.listen_addr = server.getsockname()
            self._server = server
            self._stopping.clear()
        threading.Thread(target=self._accept, args=(server,), name="relay-accept", daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self._stopping.set()
            doomed = list(self._open)
            self._open.clear()
        if server is not None:
            server.close()
        for sock in doomed:
            with suppress(OSError):
                # A reset, not a polite close: the peer learns at once that the connection is gone.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()

    close = cut

    def _accept(self, server: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._stopping.is_set():
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                self._open.discard(a)
                self._open.discard(b)
            for sock in (a, b):
                with suppress(OSError):
                    sock.close()


class RedisServer:
    """A private redis-server that keeps nothing on disk, so a restart loses every key."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        with open(self.workdir / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def faketime_unavailable() -> str | None:
    """Why a part cannot be started with a skewed clock here, or None when it can."""
    if not LIBFAKETIME.exists():
        return f"libfaketime is not installed ({LIBFAKETIME}); scripts/install-system-packages.sh installs it"
    return None


def netns_unavailable() -> str | None:
    """Why a worker cannot get a network namespace of its own here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (the `ip` command)"
    probe = f"arvprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


@dataclass
class IsolatedNetwork:
    """A network namespace joined to the host by a veth pair with private addresses; relays on the
    host end lead to loopback services, so a process inside reaches them only over the veth."""

    name: str
    host_veth: str
    host_addr: str
    relays: dict[int, TcpRelay] = field(default_factory=dict)

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def relay_to(self, port: int) -> int:
        """A port on the host end of the veth forwarding to 127.0.0.1:`port`."""
        if port not in self.relays:
            self.relays[port] = TcpRelay((self.host_addr, 0), ("127.0.0.1", port))
        return self.relays[port].port

    def cut(self) -> None:
        _ip("link", "set", self.host_veth, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_veth, "up")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def isolated_network() -> Iterator[IsolatedNetwork]:
    """A fresh namespace `arvf<pid>` on 10.213.<n>.0/30, removed with its veth pair afterwards."""
    tag = os.getpid() % 100000
    subnet = f"10.213.{tag % 250}"
    network = IsolatedNetwork(f"arvf{tag}", f"arvh{tag}", f"{subnet}.1")
    inner = f"arvn{tag}"
    _ip("netns", "add", network.name)
    try:
        _ip("link", "add", network.host_veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", network.name)
        _ip("addr", "add", f"{network.host_addr}/30", "dev", network.host_veth)
        _ip("link", "set", network.host_veth, "up")
        for args in (["addr", "add", f"{subnet}.2/30", "dev", inner], ["link", "set", inner, "up"]):
            _ip("netns", "exec", network.name, "ip", *args)
        _ip("netns", "exec", network.name, "ip", "link", "set", "lo", "up")
        yield network
    finally:
        for relay in network.relays.values():
            relay.close()
        subprocess.run(["ip", "link", "del", network.host_veth], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", network.name], capture_output=True, timeout=10)


def _with_host(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}{host}:{port}"))


@dataclass
class ProductionStack:
    """The running platform: its parts by name, the servers around it, and the fault switches."""

    workdir: Path
    env: dict[str, str]
    db_url: str
    redis: RedisServer
    storage_relay: TcpRelay
    s3_endpoint: str
    bucket: str
    mail: MailServer
    bot: FakeBotApi
    api_url: str
    admin_key: str = ""
    parts: dict[str, Part] = field(default_factory=dict)
    _extra: int = 0

    # ---- parts ---------------------------------------------------------------------------------

    def part(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None, ready: str | None
    ) -> Part:
        part = Part(name, list(argv), env or self.env, self.workdir / f"{name}.log", ready)
        self.parts[name] = part
        return part

    def worker_argv(self, group: str, node: str | None = None) -> list[str]:
        return arv_command() + [
            "worker",
            "-Q",
            WORKER_QUEUES[group],
            "-c",
            "1",
            "-n",
            f"{node or group}@%h",
            "--without-gossip",
            "--without-mingle",
        ]

    def start_platform(self) -> None:
        """Migrate, make the admin key, start the API, both workers and Beat; wait until ready."""
        self.run_arv("migrate")
        self.admin_key = self.run_arv("keys", "create", "--admin").strip().splitlines()[-1]
        port = int(self.api_url.rsplit(":", 1)[1])
        self.part("api", arv_command() + ["api", "--port", str(port)], ready=None).start()
        for group in WORKER_QUEUES:
            self.part(group, self.worker_argv(group), ready="ready.").start()
        self.part("beat", arv_command() + ["beat"], ready=None).start()
        wait_for_port(port, timeout=START_TIMEOUT_S)
        for name in ("markers", "notifications", "beat"):
            self.parts[name].wait_ready()

    def restart(self, name: str, *, env: dict[str, str] | None = None) -> Part:
        """Start the part again (after a kill); `env` replaces its environment from now on."""
        part = self.parts[name]
        part.stop()
        if env is not None:
            part.env = env
        part.start()
        part.wait_ready()
        return part

    def run_arv(self, *args: str, timeout: float = 120.0) -> str:
        done = subprocess.run(
            arv_command() + list(args),
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"arv {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def skewed_env(self, offset: str) -> dict[str, str]:
        """The platform's environment with the clock moved by `offset` (libfaketime, e.g. "-10s")."""
        reason = faketime_unavailable()
        if reason:
            raise RuntimeError(reason)
        preload = " ".join(p for p in (str(LIBFAKETIME), self.env.get("LD_PRELOAD", "")) if p)
        # Only the wall clock moves: Celery's timers run on the monotonic one.
        return {**self.env, "LD_PRELOAD": preload, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def start_second_beat(self) -> Part:
        """Another Beat with its own schedule file, as a second instance deployed by mistake does."""
        schedule = self.workdir / "beat2-schedule"
        part = self.part("beat2", arv_command() + ["beat", "-s", str(schedule)], ready=None)
        part.start().wait_ready()
        return part

    def start_isolated_worker(self, network: IsolatedNetwork) -> Part:
        """A markers worker inside `network`, reaching PostgreSQL, Redis and storage over its veth."""
        pg = urlsplit(self.db_url)
        env = {
            **self.env,
            "ARV_DATABASE_URL": _with_host(self.db_url, network.host_addr, network.relay_to(pg.port or 5432)),
            "ARV_BROKER_URL": _with_host(
                self.redis.url, network.host_addr, network.relay_to(self.redis.port)
            ),
            "ARV_S3_ENDPOINT": f"http://{network.host_addr}:{network.relay_to(self.storage_relay.port)}",
        }
        env["ARV_RESULT_BACKEND"] = env["ARV_BROKER_URL"]
        part = self.part(
            "isolated", network.exec_prefix + self.worker_argv("markers", "isolated"), env=env, ready="ready."
        )
        part.start().wait_ready()
        return part

    # ---- faults on the servers -----------------------------------------------------------------

    def restart_redis_empty(self) -> None:
        self.redis.kill()
        self.redis.start()

    def terminate_db_connections(self) -> int:
        """pg_terminate_backend for every connection to this stack's database; returns how many."""
        name = urlsplit(self.db_url).path.lstrip("/")
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchall()
        return sum(1 for (done,) in rows if done)

    def cut_storage(self) -> None:
        self.storage_relay.cut()

    def restore_storage(self) -> None:
        self.storage_relay.restore()

    # ---- reading the outcome ---------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def storage_keys(self) -> set[str]:
        """Every object in the bucket, read from the S3 server itself (not through the relay)."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        keys: set[str] = set()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                keys.update(item["Key"] for item in page.get("Contents", []))
        except client.exceptions.NoSuchBucket:
            pass  # ARV makes its bucket on first use
        return keys

    def stop(self) -> None:
        """SIGTERM to every part at once, then wait for each: a worker's warm shutdown takes 5-7 s,
        and one after the other they added up."""
        running = [part for part in reversed(list(self.parts.values())) if part.alive]
        for part in running:
            part.signal_group(signal.SIGTERM)
        for part in running:
            part.wait_stopped()


@contextmanager
def production_stack(workdir: Path, *, extra_env: dict[str, str] | None = None) -> Iterator[ProductionStack]:
    """Start ARV's production shape under `workdir` (its data folder, `workdir/data`, does not exist
    yet) and stop every part and server afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        db_url = stack.enter_context(postgres_database("arv_faults"))
        s3_endpoint = stack.enter_context(moto_s3_server())
        s3_port = int(s3_endpoint.rsplit(":", 1)[1])
        relay = TcpRelay(("127.0.0.1", 0), ("127.0.0.1", s3_port))
        stack.callback(relay.close)
        redis = RedisServer(workdir)
        redis.start()
        stack.callback(redis.kill)
        mail = stack.enter_context(smtp_server())
        bot = stack.enter_context(fake_bot_api(BOT_TOKEN))
        api_url = f"http://127.0.0.1:{free_port()}"
        bucket = f"arv-faults-{uuid.uuid4().hex[:8]}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ARV_") or k.startswith("ARV_TEST_")},
            "ARV_DATA_DIR": str(workdir / "data"),
            "ARV_DATABASE_URL": db_url,
            "ARV_BROKER_URL": redis.url,
            "ARV_RESULT_BACKEND": redis.url,
            "ARV_REDIS_KEY_PREFIX": f"arvfaults-{uuid.uuid4().hex[:6]}:",
            "ARV_STORAGE_URL": f"s3://{bucket}",
            "ARV_S3_ENDPOINT": f"http://127.0.0.1:{relay.port}",
            "ARV_S3_ACCESS_KEY": "testing",
            "ARV_S3_SECRET_KEY": "testing",
            "ARV_SMTP_HOST": mail.host,
            "ARV_SMTP_PORT": str(mail.port),
            "ARV_TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "ARV_TELEGRAM_API_URL": bot.url,
            "ARV_PUBLIC_BASE_URL": api_url,
            "ARV_SECRET_KEY": "fault-suite",
            "ARV_JSON_LOGS": "true",
            "ARV_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **FAST_RECOVERY,
            **(extra_env or {}),
        }
        platform = ProductionStack(
            workdir, env, db_url, redis, relay, s3_endpoint, bucket, mail, bot, api_url
        )
        stack.callback(platform.stop)
        platform.start_platform()
        yield platform
