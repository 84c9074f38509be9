"""Real servers on 127.0.0.1 for tests, started the way a team deploys them: PostgreSQL from
Debian's `postgresql` package, and `mlflow server` with that PostgreSQL as its backend store
and artifacts proxied through it. conftest.py imports the fixtures, so every test can ask for

- `postgres` (session): one PostgreSQL server; `postgres.create_database()` makes a fresh,
  empty database and returns its SQLAlchemy URL,
  `postgresql://postgres@127.0.0.1:PORT/NAME` (psycopg 3, the `postgres` extra);
- `postgres_url`: such a URL, a new database for each test;
- `mlflow_server` (module): the tracking URI `http://127.0.0.1:PORT` of a tracking server on
  a fresh database of its own, shared by the tests of one module.

Measured on a 2-core machine: the PostgreSQL server is up in about 1.1 s (initdb 0.4 s of
it) and stops in 0.2 s; a new database takes 0.35 s. The MLflow server answers /health about
6 s after its start (5 to 12 s with the machine busy): 1.3 to 2.3 s of it creating MLflow's
schema in the new database, the rest starting Python and MLflow twice, in the CLI and in its
uvicorn worker; it takes about 1.5 s to stop.
"""

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from benchmarks.ui_start import free_port, launch, stop

DEBIAN_PG = Path("/usr/lib/postgresql")
PG_USER = "postgres"  # the system user Debian's package creates, and the database superuser
MLFLOW = Path(sys.executable).parent / "mlflow"
MLFLOW_TIMEOUT = 60.0  # seconds for /health to answer; it takes 5 to 12


def _missing(reason: str) -> NoReturn:
    """Skip on a developer's machine without PostgreSQL; fail in CI, which installs Debian's
    package, so there a missing server is a bug in the CI setup, not a reason to skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, but CI is set: .ci/run installs Debian's postgresql")
    pytest.skip(f"{reason} (Debian package postgresql)")


def _bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them off PATH, in /usr/lib/postgresql/N/bin
    (the newest N wins); PATH is the fallback for other installs."""
    debian = sorted(
        (p.parent for p in DEBIAN_PG.glob("*/bin/pg_ctl") if p.parent.parent.name.isdigit()),
        key=lambda bindir: int(bindir.parent.name),
    )
    if debian:
        return debian[-1]
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server with trust authentication on 127.0.0.1:`port`."""

    port: int
    host: str = "127.0.0.1"
    user: str = PG_USER

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of `dbname`, as users write it: a bare `postgresql://` is psycopg 3
        in SQLAlchemy 2.1 (the project's `postgres` extra)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database, by a name no other test uses; returns its URL."""
        name = f"test_{secrets.token_hex(6)}"
        # CREATE DATABASE cannot run inside a transaction
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def _start_postgres(bindir: Path, root: Path, as_user: list[str]) -> PostgresServer:
    """initdb a cluster in `root`/data and start it listening on 127.0.0.1 only, with its
    unix socket in `root` (not /var/run/postgresql, which a system cluster may own)."""
    data, log = root / "data", root / "server.log"

    def run(*args: str) -> None:
        try:
            subprocess.run([*as_user, *args], cwd=root, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            pytest.fail(f"{' '.join(args)} failed:\n{err.stdout}{err.stderr}\n{_tail(log)}")

    # --no-sync: a throwaway cluster needs no flush to disk (0.4 s instead of 0.6 s);
    # --no-locale: C collation, so a LANG the machine has no locale for cannot break initdb
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust"]
    run(*initdb, "-E", "UTF8", "--no-locale", "--no-sync")
    port = free_port()
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n"
        )
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start")
    return PostgresServer(port)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, stopped (`pg_ctl stop -m fast`) at its end.

    PostgreSQL refuses to run as root, and tests run as root here and in CI, so then initdb
    and pg_ctl run as the `postgres` system user, in a temp folder that user owns. That folder
    is not under pytest's tmp_path: /tmp/pytest-of-root is root's alone (mode 0700)."""
    bindir = _bindir()
    if bindir is None:
        _missing("PostgreSQL's initdb and pg_ctl are not installed")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sweeps-pg-"))
    try:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(PG_USER)
            except KeyError:
                _missing(f"PostgreSQL is installed but there is no {PG_USER!r} user")
            os.chown(root, owner.pw_uid, owner.pw_gid)
            as_user = ["runuser", "-u", PG_USER, "--"]
        server = _start_postgres(bindir, root, as_user)
        try:
            yield server
        finally:
            subprocess.run(
                [*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "stop"],
                cwd=root,
                check=True,
                capture_output=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """SQLAlchemy URL of a new, empty database on the session's server."""
    return postgres.create_database()


def _healthy(url: str) -> bool:
    """Whether MLflow's health check says OK; while the server starts it refuses or resets."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.read() == b"OK"
    except OSError:  # urllib's errors, HTTPError included, are OSErrors
        return False


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Tracking URI of `mlflow server` on a new PostgreSQL database, artifacts proxied into a
    temp folder (`mlflow-artifacts:/` URIs, so clients upload over HTTP as against a team's
    server). Module scope: a start costs about 6 s, too much to pay for every test.

    Started lean, as `make ui` does (one worker, no job runner: docs/DESIGN.md). MLflow
    3.17's host and CORS checks need no flags: their defaults allow 127.0.0.1 on any port."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        str(MLFLOW),
        "server",
        "--backend-store-uri",
        postgres.create_database(),
        "--artifacts-destination",
        str(tmp / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # none of the caller's MLflow settings: `mlflow server` reads many options from MLFLOW_*
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log_path = tmp / "server.log"
    proc = launch(command, tmp, env, log_path)
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + MLFLOW_TIMEOUT
        while not _healthy(f"{uri}/health"):
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server: no OK from /health in {MLFLOW_TIMEOUT:g} s:\n{_tail(log_path)}"
                )
            time.sleep(0.2)
        yield uri
    finally:
        stop(proc)
