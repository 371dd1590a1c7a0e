"""A real PostgreSQL cluster of our own: ``initdb`` once, ``postgres`` as a child process.

The binaries come from the settings, ``PATH``, ``/usr/lib/postgresql/*/bin`` or the conda
environment. PostgreSQL refuses to run as root, so when wikipulse runs as root the server
runs as an unprivileged OS user (``postgres`` by default) that owns only the data folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from wiki_lib.config import Settings
from wiki_lib.errors import PrerequisiteError, StackError
from wiki_lib.stack._proc import pid_alive, port_open, spawn, stop_pid, wait_until

__all__ = ["PostgresServer", "find_postgres_bin"]

_INSTALL_HINT = (
    "install the PostgreSQL server (apt-get install postgresql, or conda install -c conda-forge "
    "postgresql) or set WIKI__STACK__POSTGRES_BIN to the folder holding initdb and postgres"
)


def find_postgres_bin(configured: Path | None = None) -> Path:
    """The folder with ``initdb`` and ``postgres``, or an error that says how to install them."""
    if configured:
        # An explicit choice is never second-guessed by a search elsewhere.
        if (configured / "initdb").is_file() and (configured / "postgres").is_file():
            return configured
        raise PrerequisiteError(
            f"PostgreSQL server binaries (initdb, postgres) not found in {configured} "
            "(WIKI__STACK__POSTGRES_BIN)"
        )
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    conda = os.environ.get("CONDA_PREFIX")
    if conda:
        candidates.append(Path(conda) / "bin")
    candidates.append(Path(sys.prefix) / "bin")
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise PrerequisiteError(
        f"PostgreSQL server binaries (initdb, postgres) not found; {_INSTALL_HINT}"
    )


@dataclass
class PostgresServer:
    """One PostgreSQL cluster under ``root`` listening on 127.0.0.1 only."""

    settings: Settings
    root: Path
    port: int
    pid: int | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (PGDATA)."""
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        """Where the server writes its log."""
        return self.root / "postgres.log"

    def _os_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        name = self.settings.stack.postgres_os_user
        try:
            pwd.getpwnam(name)
        except KeyError as exc:
            raise PrerequisiteError(
                f"running as root, PostgreSQL needs an unprivileged OS user {name!r}, which does "
                f"not exist; create it (useradd --system {name}) or set "
                "WIKI__STACK__POSTGRES_OS_USER"
            ) from exc
        return name

    def _prepare_dirs(self, user: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if user is None:
            return
        entry = pwd.getpwnam(user)
        state_dir = self.settings.stack.state_dir.resolve()
        for parent in [self.root.resolve(), *self.root.resolve().parents]:
            mode = parent.stat().st_mode
            if mode & 0o001:
                continue
            if parent.is_relative_to(state_dir):
                parent.chmod(mode | 0o001)
            else:
                raise PrerequisiteError(
                    f"PostgreSQL runs as OS user {user!r}, who cannot enter {parent}; set "
                    "WIKI__STACK__STATE_DIR to a folder it can reach (e.g. /var/lib/wikipulse)"
                )
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.log_file.touch(exist_ok=True)
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def initialised(self) -> bool:
        """Whether ``initdb`` already ran here."""
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster with the admin role (scram passwords, UTF-8, C collation)."""
        bin_dir = find_postgres_bin(self.settings.stack.postgres_bin)
        user = self._os_user()
        self._prepare_dirs(user)
        if self.initialised():
            return
        pg = self.settings.postgres
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(pg.admin_password.get_secret_value())
        try:
            pwfile.chmod(0o600)
            if user:
                entry = pwd.getpwnam(user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            proc = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    pg.admin_user,
                    f"--pwfile={pwfile}",
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                check=False,
                user=user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise StackError(f"initdb failed: {(proc.stdout + proc.stderr).strip()[-800:]}")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# wikipulse local stack\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "shared_buffers = 256MB\n"
                "work_mem = 16MB\n"
                "max_connections = 100\n"
                "wal_compression = on\n"
                "log_min_messages = warning\n"
                "log_line_prefix = '%m [%p] %u@%d '\n"
            )

    def start(self) -> None:
        """Start the server unless running, and wait until it accepts logins."""
        if pid_alive(self.pid):
            return
        if port_open(self.port):
            raise StackError(
                f"port {self.port} for PostgreSQL is already in use; free it or set "
                "WIKI__POSTGRES__PORT (0 picks a free port)"
            )
        bin_dir = find_postgres_bin(self.settings.stack.postgres_bin)
        user = self._os_user()
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        self.pid = spawn(
            [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)],
            self.log_file,
            user=user,
            cwd=self.root,
        )
        wait_until(
            self._accepts_logins,
            self.settings.stack.start_timeout_s,
            f"PostgreSQL (port {self.port})",
            alive=lambda: pid_alive(self.pid),
            log_file=self.log_file,
        )

    def _accepts_logins(self) -> bool:
        import psycopg2

        if not port_open(self.port):
            return False
        pg = self.settings.postgres
        try:
            conn = psycopg2.connect(
                host="127.0.0.1",
                port=self.port,
                dbname="postgres",
                user=pg.admin_user,
                password=pg.admin_password.get_secret_value(),
                connect_timeout=2,
            )
        except psycopg2.OperationalError:
            return False
        conn.close()
        return True

    def stop(self) -> bool:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit)."""
        stopped = stop_pid(self.pid, timeout=60, sig=signal.SIGINT)
        self.pid = None
        return stopped
