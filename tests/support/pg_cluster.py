"""A private PostgreSQL cluster, for tests that stop or break the server itself.

    with pg_cluster() as cluster:  # initdb in a temporary folder, started on a free port
        url = cluster.url  # postgresql+asyncpg://postgres@127.0.0.1:<port>/postgres
        cluster.stop("smart", wait=False)  # new connections refused (57P03), sessions live on
    # stopped (immediate mode) and its folder removed, whatever happened in the block

    with pg_cluster() as primary, streaming_replica(primary) as replica:
        replica.sql("SELECT pg_wal_replay_pause()")  # a replica that stops catching up
        replica.stop()
        replica.start(port=replica.port)  # back where the app expects it

The cluster has its own data folder, port and socket folder: the machine's server (the one
COURTYARD_TEST_DATABASE_URL names) is never touched. PostgreSQL refuses to run as root, so
when the tests run as root (as in CI containers) initdb and the server run as the
`postgres` OS user, which then owns the temporary folder. Made for speed, not durability:
no fsync, a small shared_buffers, trust authentication on 127.0.0.1 only (replication
connections included, so that `streaming_replica` can copy it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"  # the cluster's superuser role, and the OS user when we are root
_TOOLS = ("initdb", "pg_ctl", "postgres")
_REPLICA_TOOLS = ("pg_basebackup", "psql")
_START_ATTEMPTS = 3  # a free port can be taken between finding it and the server binding it
_SETTINGS = """
# tests/support/pg_cluster.py: a throwaway test server
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
shared_buffers = 16MB
max_connections = 40
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 4
wal_keep_size = 64MB
hot_standby = on
"""
# Appended to the copy's postgresql.conf (the later line wins): its own socket folder.
_STANDBY_SETTINGS = """
# tests/support/pg_cluster.py: a streaming replica of a throwaway test server
unix_socket_directories = '{sockets}'
"""
_REPLICATION_HBA = "host replication {user} 127.0.0.1/32 trust\n"


class PostgresNotInstalled(RuntimeError):
    """The PostgreSQL server programs (initdb, pg_ctl, postgres) are not on this machine."""


def server_binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres: `pg_config --bindir`, else the
    newest /usr/lib/postgresql/<version>/bin, else wherever `pg_ctl` is on the PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    installed = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(installed, key=lambda p: _version_key(p.parent.name), reverse=True)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(pg_ctl).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in _TOOLS):
            return folder
    raise PostgresNotInstalled(
        "the PostgreSQL server programs (initdb, pg_ctl, postgres) were not found: install "
        "the PostgreSQL server (e.g. `apt-get install postgresql`) or put pg_config on PATH"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgCluster:
    bindir: Path
    root: Path  # the temporary folder: data folder, unix socket and server log
    port: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database, as the app takes it."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one of the server programs as the cluster's owner."""
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, check=False, timeout=120
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.log()[-3000:]}"
            )
        return done

    def sql(self, statement: str) -> str:
        """Run `statement` with psql as the superuser (on the `postgres` database); its
        output, unaligned and without headers."""
        done = self.run(
            "psql",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--username",
            SUPERUSER,
            "--dbname",
            "postgres",
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--set",
            "ON_ERROR_STOP=1",
            "--command",
            statement,
        )
        return done.stdout.strip()

    def initdb(self) -> None:
        self.run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(sockets=self.root))
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(_REPLICATION_HBA.format(user=SUPERUSER))

    def start(self, *, port: int | None = None) -> None:
        """Start on `port`, or a free port, on 127.0.0.1, waiting until it accepts
        connections (a standby: once it can serve reads). Pass the cluster's own port to
        bring a stopped server back where its clients expect it."""
        attempts = 1 if port else _START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = port or _free_port()
            started = self.run(
                "pg_ctl",
                "start",
                "--pgdata",
                str(self.data),
                "--log",
                str(self.log_file),
                "--wait",
                "--timeout",
                "60",
                "-o",
                f"-p {self.port}",
                check=attempt == attempts,
            )
            if started.returncode == 0:
                return

    def stop(self, mode: str = "fast", *, wait: bool = True) -> None:
        """`pg_ctl stop` in `mode` (smart: refuse new connections, end once every session
        has; fast; immediate); without `wait`, return once the server is told."""
        self.run("pg_ctl", *self._stop_args(mode, wait=wait))

    def _stop_args(self, mode: str, *, wait: bool) -> list[str]:
        return [
            "stop",
            "--pgdata",
            str(self.data),
            "--mode",
            mode,
            "--wait" if wait else "--no-wait",
        ]

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None

    def destroy(self) -> None:
        """Stop the server at once if it runs, then remove the folder. A server that would
        not stop is left with its folder, and named in the error."""
        if self.postmaster_pid() is not None:
            stopped = self.run("pg_ctl", *self._stop_args("immediate", wait=True), check=False)
            pid = self.postmaster_pid()
            if stopped.returncode != 0 and pid is not None:
                raise RuntimeError(
                    f"the test PostgreSQL server (pid {pid}, {self.data}) did not stop:\n"
                    f"{stopped.stdout}{stopped.stderr}"
                )
        shutil.rmtree(self.root, ignore_errors=True)


def _owned_folder(prefix: str) -> Path:
    """A new temporary folder the server can own: the `postgres` OS user's when root."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresNotInstalled(
                f"running as root, the test server needs the `{SUPERUSER}` OS user"
            ) from None
        os.chown(root, owner.pw_uid, owner.pw_gid)
    return root


@contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A new cluster, running; stopped (immediate mode) and removed when the block ends,
    however it ends. Raises `PostgresNotInstalled` without the server programs."""
    cluster = PgCluster(server_binaries(), _owned_folder("courtyard-pg-"))
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@contextmanager
def streaming_replica(primary: PgCluster) -> Iterator[PgCluster]:
    """A hot standby of the running `primary` on a port of its own: a base backup taken
    with `pg_basebackup -R` (which writes the standby's connection to the primary and its
    `standby.signal`), then started; it streams and replays the primary's WAL as a
    production replica does. Stopped and removed when the block ends, however it ends.
    Raises `PostgresNotInstalled` without pg_basebackup and psql."""
    missing = [t for t in _REPLICA_TOOLS if not os.access(primary.bindir / t, os.X_OK)]
    if missing:
        raise PostgresNotInstalled(f"{', '.join(missing)} not found in {primary.bindir}")
    replica = PgCluster(primary.bindir, _owned_folder("courtyard-pg-replica-"))
    try:
        replica.run(
            "pg_basebackup",
            "--pgdata",
            str(replica.data),
            "--host",
            "127.0.0.1",
            "--port",
            str(primary.port),
            "--username",
            SUPERUSER,
            "--write-recovery-conf",
            "--checkpoint",
            "fast",
            "--wal-method",
            "stream",
            "--no-sync",
        )
        with (replica.data / "postgresql.conf").open("a") as conf:
            conf.write(_STANDBY_SETTINGS.format(sockets=replica.root))
        replica.start()
        yield replica
    finally:
        replica.destroy()
