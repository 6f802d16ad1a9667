"""Private PostgreSQL and Redis servers in a temporary directory, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg2
import redis

from stack.polling import wait_until


class MissingBinary(RuntimeError):
    """A server binary this needs is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise MissingBinary("PostgreSQL's initdb and pg_ctl are not installed.")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port (trust auth)."""

    @staticmethod
    def check_binaries() -> None:
        bindir = postgres_bindir()
        if not (bindir / "pg_ctl").exists():
            raise MissingBinary(f"pg_ctl is missing from {bindir}.")
        if os.geteuid() == 0 and not shutil.which("runuser"):
            raise MissingBinary("runuser is needed to run PostgreSQL as the postgres user.")

    def __init__(self, root: Path):
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.root = Path(root)
        self.data = self.root / "pgdata"
        self.logfile = self.root / "postgres.log"

    def _run_as_owner(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result

    def init(self) -> PrivatePostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            for directory in (self.root.parent, self.root):
                # The postgres user must be able to reach its data directory.
                mode = directory.stat().st_mode
                if not mode & 0o001:
                    directory.chmod(mode | 0o005)
            shutil.chown(self.data, "postgres", "postgres")
            self.logfile.touch()
            shutil.chown(self.logfile, "postgres", "postgres")
        self._run_as_owner("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        self._run_as_owner("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run_as_owner("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str = "medportal") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str = "medportal") -> None:
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()


def sql(url: str, query: str, params=()) -> list[tuple]:
    """Run one query on a database by URL (a fresh connection: the server may just have restarted)."""
    connection = psycopg2.connect(url, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            rows = cursor.fetchall() if cursor.description else []
        connection.commit()
        return rows
    finally:
        connection.close()


# --- Redis -----------------------------------------------------------------------------------


class PrivateRedis:
    """A throwaway Redis with no persistence: a restart comes back empty, like the machine's."""

    @staticmethod
    def check_binaries() -> None:
        if not shutil.which("redis-server"):
            raise MissingBinary("redis-server is not installed.")

    def __init__(self, root: Path):
        self.check_binaries()
        self.port = free_port()
        self.root = Path(root)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "redis.log", "a")  # noqa: SIM115 - owned by the server process
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), timeout=20, message="redis-server accepting connections")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
