"""Background processes this project starts, tracked by pid files in OSR_RUN_DIR.

Why a module of its own: every local service (Kafka, tansu, Airflow, Dask) needs the
same discipline — start detached in its own session (own process group, so Ctrl-C in
the terminal does not reach it and a group signal reaches its children), log to a file,
write a pid file, and stop *only* a process that is really ours: the pid file's pid must
still run a command line that matches the service's signature and (when recorded) have
the same start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipelines import config

#: Popen objects of the processes this Python process started (so they are reaped, not left as zombies).
_CHILDREN: dict[int, subprocess.Popen] = {}


class ServiceError(RuntimeError):
    """A service could not be installed, started, reached or stopped; the message says why and what to look at."""


@dataclass(frozen=True)
class Service:
    """A named background process: pid file `<OSR_RUN_DIR>/<name>.pid`, log `<OSR_LOG_DIR>/<name>.log`.

    `signature` lists substrings that must all occur in the process's command line for
    it to count as ours (e.g. ("java", "kafka.Kafka")); `child_signature` the same for
    the children it spawns, so they can be stopped even if the leader died first.
    """

    name: str
    signature: tuple[str, ...]
    child_signature: tuple[str, ...] = ()

    @property
    def pid_file(self) -> Path:
        return config.path("OSR_RUN_DIR") / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return config.path("OSR_LOG_DIR") / f"{self.name}.log"

    def matches(self, pid: int, started: float | None = None) -> bool:
        """True when `pid` is alive (not a zombie), runs our command line and, if given, started at `started`."""
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                _reap(pid)
                return False
            cmd = " ".join(proc.cmdline())
            if started is not None and abs(proc.create_time() - started) > 1.0:
                return False
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False
        return all(part in cmd for part in self.signature)

    def read_pid_file(self) -> tuple[int, float | None] | None:
        """(pid, start time or None) from the pid file, or None if there is no readable pid file."""
        try:
            fields = self.pid_file.read_text().split()
            return int(fields[0]), (float(fields[1]) if len(fields) > 1 else None)
        except (OSError, ValueError, IndexError):
            return None

    def running_pid(self) -> int | None:
        """Pid of our running process, or None (no pid file, dead process, or a pid that is not ours)."""
        entry = self.read_pid_file()
        if entry and self.matches(*entry):
            return entry[0]
        return None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start `argv` detached (new session), output appended to the log file; write the pid file; return the pid."""
        if (pid := self.running_pid()) is not None:
            raise ServiceError(f"{self.name} is already running (pid {pid}, pid file {self.pid_file})")
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                raise ServiceError(f"cannot start {self.name}: {exc}") from exc
        _CHILDREN[proc.pid] = proc
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started = None
        self.pid_file.write_text(f"{proc.pid} {started}\n" if started is not None else f"{proc.pid}\n")
        return proc.pid

    def stop(self, timeout: float = 30.0) -> str:
        """Stop our process and its process group: SIGTERM, wait `timeout` s, then SIGKILL. Returns what happened.

        A pid file naming a process that is not ours (dead, or a recycled pid) is removed
        and that process is left untouched.
        """
        entry = self.read_pid_file()
        if entry is None:
            return "not running (no pid file)"
        pid, started = entry
        if not self.matches(pid, started):
            orphans = self._orphans(pid, started)
            for orphan in orphans:
                _signal(orphan, None, signal.SIGTERM)
            if orphans and not all(_wait_gone(o, None, timeout) for o in orphans):
                for orphan in orphans:
                    _signal(orphan, None, signal.SIGKILL)
            self.pid_file.unlink(missing_ok=True)
            if orphans:
                return f"leader pid {pid} was gone; stopped its leftover children {orphans}"
            return f"not running (removed a stale pid file: pid {pid} is gone or is not ours; nothing was signalled)"
        group = _own_group(pid)
        _signal(pid, group, signal.SIGTERM)
        outcome = "stopped"
        if not _wait_gone(pid, group, timeout):
            _signal(pid, group, signal.SIGKILL)
            outcome = f"killed (did not stop within {timeout:.0f} s of SIGTERM)"
            if not _wait_gone(pid, group, 10.0):
                raise ServiceError(f"{self.name} (pid {pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return f"{outcome} (pid {pid})"

    def _orphans(self, pgid: int, started: float | None) -> list[int]:
        """Children left in our dead leader's process group (e.g. Airflow components holding ports).

        Only processes of that exact group whose command line holds `child_signature`
        and that started after the leader count; anything else is not ours.
        """
        if started is None or not self.child_signature:
            return []
        found = []
        for pid in _group_members(pgid):
            try:
                proc = psutil.Process(pid)
                cmd = " ".join(proc.cmdline())
                if proc.create_time() >= started - 1.0 and all(p in cmd for p in self.child_signature):
                    found.append(pid)
            except psutil.Error:
                continue
        return found

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the service log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])


def _own_group(pid: int) -> int | None:
    """The process group to signal: the pid's own group if it leads one (we start every service so), else None."""
    try:
        return pid if os.getpgid(pid) == pid else None
    except ProcessLookupError:
        return None


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _signal(pid: int, group: int | None, sig: signal.Signals) -> None:
    try:
        if group is not None:
            os.killpg(group, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours so it does not linger as a zombie."""
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        proc.poll()
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        return True
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, group: int | None, timeout: float) -> bool:
    """Wait until the process (and, for a group leader, every process of its group) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid) and (group is None or not _group_members(group)):
            return True
        time.sleep(0.2)
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:9092' (first of a comma list, optional scheme) -> ('127.0.0.1', 9092)."""
    first = address.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise ServiceError(f"expected host:port, got {address!r}")
    return host, int(port)


def wait_until(
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    service: Service | None = None,
    pid: int | None = None,
    progress: Callable[[str], None] | None = None,
    interval: float = 0.5,
) -> float:
    """Poll `ready()` until it is true; return the seconds waited.

    Fails early with the log tail if the service's process died, and with the log tail
    after `timeout` seconds.
    """
    t0 = time.monotonic()
    last_note = t0
    while True:
        if ready():
            return time.monotonic() - t0
        waited = time.monotonic() - t0
        if pid is not None and not _alive(pid):
            tail = service.log_tail() if service else ""
            raise ServiceError(f"{what}: the process (pid {pid}) exited while starting. Log tail:\n{tail}")
        if waited > timeout:
            tail = f" Log tail ({service.log_file}):\n{service.log_tail()}" if service else ""
            raise ServiceError(f"{what}: not ready after {timeout:.0f} s.{tail}")
        if progress and time.monotonic() - last_note >= 5:
            progress(f"  ... waiting for {what} ({waited:.0f} s)")
            last_note = time.monotonic()
        time.sleep(interval)


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and benchmarks)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
