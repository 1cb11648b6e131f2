"""A throwaway PostgreSQL server for the test run: initdb into a temporary folder, listen on a
free loopback port only, remove everything at the end.

initdb refuses to run as root, so under root the server runs as the `postgres` user that the
Debian package creates, in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any


class Unavailable(RuntimeError):
    """No server could be started here; the message says why."""


def find_bindir() -> Path:
    candidates: list[str] = []
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).resolve().parent))
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)
    for folder in candidates:
        if folder and all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    raise Unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on PATH, in "
                      "`pg_config --bindir` or /usr/lib/postgresql/*/bin; install the "
                      "`postgresql` package")


def _major(bindir: str) -> int:
    version = Path(bindir).parent.name
    return int(version) if version.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One server; `new_database()` gives each test its own empty database."""

    user = "postgres"

    def __init__(self) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise Unavailable(f"psycopg is not installed ({exc}): pip install -e '.[test]'") \
                from None
        self._psycopg = psycopg
        self.bindir = find_bindir()
        self.run_as: dict[str, Any] = {}
        self.root = Path(tempfile.mkdtemp(prefix="screener-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                raise Unavailable("running as root, and initdb refuses root: no `postgres` "
                                  "user to run the server as") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._admin: Any = None
        try:
            self._pg("initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8",
                     "--locale=C", "--no-sync")
            self._start()
            self._admin = psycopg.connect(self.url("postgres", "postgresql"), autocommit=True)
        except BaseException:
            self.stop()
            raise

    def _pg(self, tool: str, *args: object) -> None:
        command = [str(self.bindir / tool), *map(str, args)]
        env = {**os.environ, "LC_ALL": "C", "PGTZ": "UTC"}
        done = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True,
                              timeout=120, **self.run_as)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
            raise Unavailable(f"{tool} failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-1500:]} {log}")

    def _start(self) -> None:
        for attempt in range(3):  # the free port may be taken between probing and listening
            self.port = _free_port()
            options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=300")
            try:
                self._pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                         "-o", options, "start")
                return
            except Unavailable:
                if attempt == 2:
                    raise

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"screener_test_{next(self._names)}"
        self._admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Unavailable):
                self._pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
