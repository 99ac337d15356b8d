"""A PostgreSQL cluster of a test's own on a free port: the test may stop and restart it without touching anyone's."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.optional import unavailable
from tests.servers.processes import free_port

COMMAND_TIMEOUT_SECONDS = 60


class OwnPostgres:
    """initdb's cluster in its own directory; `stop` and `start` it at will (the port stays the same)."""

    def __init__(self, bin_dir: Path, directory: Path, as_user: list[str]) -> None:
        self.bin_dir = bin_dir
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.as_user = as_user  # initdb and postgres refuse to run as root
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: sessions are ended, as in a restart or a failover."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        unavailable("PostgreSQL's initdb is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


def _as_user() -> tuple[list[str], int | None]:
    """The command prefix and uid to run the cluster as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        unavailable("running as root without a postgres user to run initdb as")
    return ["runuser", "-u", "postgres", "--"], uid


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A started cluster in a fresh directory (removed afterwards); yields it, stopping it at the end."""
    bin_dir = _bin_dir()
    as_user, uid = _as_user()
    directory = Path(tempfile.mkdtemp(prefix="muster-own-postgres-"))
    if uid is not None:
        os.chown(directory, uid, -1)
    cluster = OwnPostgres(bin_dir, directory, as_user)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            cluster.run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(directory, ignore_errors=True)
