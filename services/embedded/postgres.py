"""A throwaway PostgreSQL cluster for tests and benchmarks (initdb + pg_ctl, loopback only).

PostgreSQL refuses to run as root; when we are root the cluster is created and run
as the ``postgres`` system user through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from services.embedded.process import free_port
from services.errors import EmbeddedStackError

INSTALL_HINT = (
    "install the PostgreSQL server (Debian: `apt-get install -y postgresql`), or point "
    "TOUCHSTREAM_TEST_DATABASE_URL at an existing server"
)


def find_pg_bin(name: str) -> str:
    """Path of a PostgreSQL server program: on PATH, else Debian's newest versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    raise EmbeddedStackError(f"PostgreSQL's `{name}` was not found; {INSTALL_HINT}")


class ThrowawayPostgres:
    """``start()`` a fresh cluster on a free port; ``stop()`` removes every trace of it."""

    def __init__(self, *, fsync: bool = False, settings: Mapping[str, str] | None = None) -> None:
        self.fsync = fsync
        self.settings = dict(settings or {})  # more server settings (-c name=value)
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="touchstream-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database as superuser ``postgres``."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise EmbeddedStackError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}"
            )

    def start(self) -> ThrowawayPostgres:
        if self._as_postgres:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as error:
                raise EmbeddedStackError(
                    f"running as root, but there is no `postgres` user to run PostgreSQL as; "
                    f"{INSTALL_HINT}"
                ) from error
            self.base.chmod(0o755)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run(
            [
                find_pg_bin("initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server on the existing cluster (after :meth:`pause`)."""
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        pg_ctl = find_pg_bin("pg_ctl")
        self._run([pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"])

    def pause(self) -> None:
        """Stop the server (its connections drop), keeping the cluster for :meth:`resume`:
        a database outage, for tests."""
        if (self.data / "postmaster.pid").exists():
            self._run([find_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def stop(self) -> None:
        self.pause()
        shutil.rmtree(self.base, ignore_errors=True)
