"""A local PostgreSQL (Debian's `postgresql` package) in a folder of our own, on 127.0.0.1 only.

Why not the Debian service: it has its own data folder, port and systemd unit; the cluster needs a
throw-away server it owns (initdb into <home>/postgres, started and stopped by pid). PostgreSQL refuses
to run as root, so as root the server binaries run as the `postgres` user (setpriv, which execs, so
the pid file names the server itself). Authentication is scram-sha-256 on TCP with a password
generated at initdb and kept in a pgpass file (mode 600) that clients find through PGPASSFILE: no
password is written into any connection string, log or command line.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.ops.services.processes import Service, ServiceError, port_open, wait_until

USER = "osr"  # the database superuser initdb creates (not the OS user)


def bin_dir() -> Path:
    """The newest installed PostgreSQL server's bin folder (/usr/lib/postgresql/<major>/bin)."""
    root = Path("/usr/lib/postgresql")
    found = sorted((p for p in root.glob("*/bin") if (p / "postgres").is_file()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found:
        raise ServiceError("PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/postgres): "
                           "apt-get install postgresql (infra/setup.sh does)")
    return found[-1]


@dataclass(frozen=True)
class Postgres:
    home: Path  # <cluster home>/postgres: data/, pgpass, socket
    port: int

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pgpass(self) -> Path:
        return self.home / "pgpass"

    def service(self) -> Service:
        return Service("postgres", ("postgres", "-D", str(self.data_dir)))

    def conninfo(self, dbname: str) -> str:
        """A libpq connection string without the password (it comes from PGPASSFILE)."""
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user={USER}"

    def sqlalchemy_url(self, dbname: str, driver: str) -> str:
        """For Airflow (SQLAlchemy): libpq reads the password from PGPASSFILE here too."""
        return f"postgresql+{driver}://{USER}@127.0.0.1:{self.port}/{dbname}"

    def env(self) -> dict[str, str]:
        return {"PGPASSFILE": str(self.pgpass)}


def _as_server_user(argv: list[str]) -> list[str]:
    """Run a server binary as `postgres` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceError("running as root and there is no `postgres` user to run PostgreSQL as "
                           "(the Debian package creates it)") from exc
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def initdb(pg: Postgres) -> bool:
    """Create the data folder once (superuser `osr`, a generated password, scram on TCP). True if created now."""
    if (pg.data_dir / "PG_VERSION").is_file():
        return False
    pg.home.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    pwfile = pg.home / ".initdb-pw"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    _give_to_server_user(pg.home)
    _give_to_server_user(pwfile)
    try:
        result = subprocess.run(_as_server_user([
            str(bin_dir() / "initdb"), "-D", str(pg.data_dir), f"--username={USER}", f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8", "--no-instructions",
        ]), capture_output=True, text=True)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise ServiceError(f"initdb into {pg.data_dir} failed (exit {result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-2000:]}")
    pg.pgpass.write_text(f"127.0.0.1:{pg.port}:*:{USER}:{password}\n")
    pg.pgpass.chmod(0o600)
    return True


def _answers(pg: Postgres) -> bool:
    result = subprocess.run([str(bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(pg.port), "-q"])
    return result.returncode == 0


def psql(pg: Postgres, sql: str, dbname: str = "postgres") -> str:
    result = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", pg.conninfo(dbname),
                             "-c", sql], capture_output=True, text=True, env={**os.environ, **pg.env()})
    if result.returncode != 0:
        raise ServiceError(f"psql on 127.0.0.1:{pg.port} failed: {result.stderr.strip()[-1000:]}")
    return result.stdout.strip()


def start(pg: Postgres, databases: tuple[str, ...] = (), progress: Callable[[str], None] | None = None,
          timeout: float = 60.0) -> dict:
    """initdb (once), start the server on 127.0.0.1:<port>, create `databases` if missing."""
    say = progress or (lambda _m: None)
    svc = pg.service()
    t0 = time.monotonic()
    created = initdb(pg)
    if created:
        say(f"initdb: PostgreSQL data folder {pg.data_dir} (superuser {USER}, password in {pg.pgpass})")
    pid = svc.running_pid()
    if pid is None:
        if port_open("127.0.0.1", pg.port):
            raise ServiceError(f"port {pg.port} on 127.0.0.1 is taken by a process that is not our PostgreSQL")
        pid = svc.start(_as_server_user([
            str(bin_dir() / "postgres"), "-D", str(pg.data_dir), "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={pg.port}", "-c", f"unix_socket_directories={pg.data_dir}", "-c", "max_connections=100",
            "-c", "shared_buffers=64MB", "-c", "fsync=on",
        ]), cwd=pg.home)
        say(f"Started PostgreSQL (pid {pid}) at 127.0.0.1:{pg.port}; log {svc.log_file}")
    wait_until(lambda: _answers(pg), f"PostgreSQL at 127.0.0.1:{pg.port}", timeout, svc, pid, say, interval=0.3)
    for db in databases:
        if psql(pg, f"SELECT 1 FROM pg_database WHERE datname = '{db}'") != "1":
            psql(pg, f'CREATE DATABASE "{db}"')
            say(f"created database {db}")
    return {"pid": pid, "address": f"127.0.0.1:{pg.port}", "initdb": created,
            "ready_seconds": round(time.monotonic() - t0, 2)}


def stop(pg: Postgres, timeout: float = 30.0) -> str:
    """Fast shutdown (SIGINT: roll back open sessions, checkpoint, exit) of our server, SIGKILL after `timeout`.
    Not SIGTERM: that is PostgreSQL's "smart" shutdown, which waits for every client to disconnect."""
    svc = pg.service()
    pid = svc.running_pid()
    if pid is None:
        return svc.stop(timeout)  # clears a stale pid file
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while svc.matches(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not svc.matches(pid):
        svc.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"
    return svc.stop(5.0)


def status(pg: Postgres) -> dict:
    pid = pg.service().running_pid()
    return {"service": "postgres", "state": "up" if pid else "down", "pid": pid, "address": f"127.0.0.1:{pg.port}",
            "answering": bool(pid and _answers(pg)), "log": str(pg.service().log_file)}
