"""A real pgbouncer in transaction mode in front of a PostgreSQL server, for tests.

    with pgbouncer(server_url) as url:  # the same database, through pgbouncer
        ...

pgbouncer comes from the OS packages (`apt-get install pgbouncer`); it refuses to run as
root, so when the tests do (CI containers) it runs as the `postgres` OS user, which then
owns its temporary folder. Its small server pool (two connections per database and user)
makes clients share server connections all the time, as in production: a statement that
assumes it keeps its server connection between transactions fails here at once.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.pg_cluster import SUPERUSER
from tests.support.served import free_port, stop_process

SERVER_POOL_SIZE = 2
_CONFIG = """
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {root}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 400
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
"""


class PgbouncerNotInstalled(RuntimeError):
    """pgbouncer is not on this machine."""


def _binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if found is None:
        raise PgbouncerNotInstalled(
            "pgbouncer was not found: install it (e.g. `apt-get install pgbouncer`) to run "
            "the transaction-pooler tests against PostgreSQL"
        )
    return found


def _wait_until_listening(port: int, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}):\n{_read(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {port} within 20 s:\n{_read(log)}")


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


@contextmanager
def pgbouncer(server_url: str) -> Iterator[str]:
    """pgbouncer (transaction mode) in front of the server of `server_url`, running for the
    block; yields `server_url` pointed at it (same database, user and driver)."""
    binary = _binary()
    server = make_url(server_url)
    root = Path(tempfile.mkdtemp(prefix="courtyard-pgbouncer-"))
    listen_port = free_port()
    (root / "users.txt").write_text(f'"{server.username or SUPERUSER}" ""\n')
    (root / "pgbouncer.ini").write_text(
        _CONFIG.format(
            host=server.host or "127.0.0.1",
            port=server.port or 5432,
            listen_port=listen_port,
            root=root,
            pool_size=SERVER_POOL_SIZE,
        )
    )
    command = [binary, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SUPERUSER)
        for path in (root, *root.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        command = ["runuser", "-u", SUPERUSER, "--", *command]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_until_listening(listen_port, process, root / "pgbouncer.log")
        yield server.set(host="127.0.0.1", port=listen_port).render_as_string(hide_password=False)
    finally:
        stop_process(process, timeout=10)
        shutil.rmtree(root, ignore_errors=True)
