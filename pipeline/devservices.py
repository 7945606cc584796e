"""Throwaway PostgreSQL and Redis servers on 127.0.0.1, for the scale test and `bench_scale.py`.

Debian's `postgresql` and `redis-server` packages, nothing else: a cluster is initialised in a
fresh temporary directory, listens on a free loopback port (and a socket in that directory), and
is removed on exit. PostgreSQL refuses to run as root, so as root the cluster belongs to the
`postgres` user and its binaries run through `runuser`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class ServiceUnavailable(RuntimeError):
    """The PostgreSQL or Redis binaries are not installed (apt-get install postgresql redis-server)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's binaries (Debian keeps them off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServiceUnavailable("PostgreSQL not found: apt-get install postgresql")


def services_available() -> bool:
    try:
        pg_bindir()
    except ServiceUnavailable:
        return False
    return shutil.which("redis-server") is not None


@dataclass
class PgCluster:
    """A running throwaway cluster: `dsn(db)` is a libpq conninfo for database `db`."""

    root: Path
    port: int
    bindir: Path
    user: str = "postgres"
    databases: list[str] = field(default_factory=list)

    def dsn(self, dbname: str) -> str:
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user={self.user}"

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL (Airflow's metadata database)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        import psycopg2

        con = psycopg2.connect(self.dsn("postgres"))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{dbname}"')
        finally:
            con.close()
        self.databases.append(dbname)
        return self.dsn(dbname)


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_cluster(*, max_connections: int = 200) -> Iterator[PgCluster]:
    """Start a cluster in a new temporary directory; stop it and delete the directory after.

    `fsync=off`: a scratch cluster for tests and benches (production keeps the defaults)."""
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="parallax-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    data = root / "data"
    subprocess.run(
        _as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
        f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        f"-c max_connections={max_connections}"
    )
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log")]
    subprocess.run(
        _as_owner([*ctl, "-o", options, "-w", "-t", "60", "start"]),
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield PgCluster(root=root, port=port, bindir=bindir)
    finally:
        subprocess.run(
            _as_owner([*ctl, "-m", "fast", "-w", "-t", "30", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis on a free loopback port with no persistence; yields its `redis://` URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise ServiceUnavailable("redis-server not found: apt-get install redis-server")
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="parallax-redis-"))
    proc = subprocess.Popen(
        [
            exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
