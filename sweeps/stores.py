"""Opening the stores a study writes to, safely when many workers share them: MLflow's
tracking store and Optuna's storage.

- A fresh SQLite store is built in a side file and renamed into place, so a worker killed
  while the tables are created leaves no half-made database, and two workers starting at once
  do not race on the schema (`table ... already exists`): one builds it under a file lock.
- `lock(url)` is held by one process at a time across every worker of a store: a file lock
  beside a SQLite database or journal file, a session advisory lock on PostgreSQL. The
  operating system or the server releases it when its holder dies, so a kill never leaves
  it taken. Workers hold it for the few writes that must not interleave (creating schemas,
  queueing and asking trials, failing dead workers' trials).
- A new MLflow store is a copy of an empty one kept in the user's cache per MLflow version
  (`templates`), rather than built by MLflow's schema migrations each time.
- An unreachable server or an unwritable folder is found at start, within seconds, and named
  in one line (`UserError`), before any data is loaded or run opened.
"""

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from sweeps.errors import UserError

log = logging.getLogger(__name__)

TEMPLATES_ENV = "SWEEPS_STORE_TEMPLATES"
CONNECT_TIMEOUT = 5  # seconds: unreachable servers fail well within 10 s
WAIT_NOTICE = 10  # seconds waiting on another worker's lock before saying so


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL, else None."""
    return Path(url.removeprefix("sqlite:///")).resolve() if url.startswith("sqlite:///") else None


def is_server(url: str) -> bool:
    """A database server URL (PostgreSQL, MySQL): locks and schemas go through the server."""
    return url.split(":", 1)[0].split("+")[0] in ("postgresql", "mysql")


def check_writable(folder: Path, what: str) -> None:
    """Creating the folder and a file in it must work, or the store cannot record anything
    (SQLite writes its journal beside the database)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"{what} cannot be written: {err.strerror} ({folder})") from err


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    file_lock = FileLock(f"{path}.sweeps-lock")  # `.lock` is Optuna's journal lock
    try:
        file_lock.acquire(timeout=WAIT_NOTICE)
    except Timeout:
        log.info("waiting for another worker's lock on %s", path)
        file_lock.acquire()
    try:
        yield
    finally:
        file_lock.release()


@contextmanager
def _advisory_lock(url: str, name: str) -> Iterator[None]:
    """PostgreSQL's session lock: the server drops it with the connection of a dead holder."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )
    key = zlib.crc32(name.encode())
    try:
        connection = engine.connect()
    except sqlalchemy.exc.OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise UserError(f"{url} is not reachable: {reason}") from err
    try:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        yield
        connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        connection.close()
        engine.dispose()


def lock(url: str, name: str = "sweeps") -> Any:
    """A lock over every worker of the store at `url` (a SQLAlchemy URL or a journal file);
    `name` tells apart locks sharing a database server."""
    path = sqlite_path(url)
    if path is not None:
        return _file_lock(path)
    if "://" not in url:  # an Optuna journal file
        return _file_lock(Path(url).resolve())
    if url.startswith("postgresql"):
        return _advisory_lock(url, name)
    log.warning("no lock across workers for %s: start one worker before the others", url)
    return nullcontext()


def templates() -> Path:
    """Where empty stores are kept to be copied: `$SWEEPS_STORE_TEMPLATES`, else the user's
    cache (`~/.cache/sweeps/stores` on Linux, beside the dataset cache)."""
    configured = os.environ.get(TEMPLATES_ENV)
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("sweeps")) / "stores"


def _from_template(side: Path, template: str, create: Callable[[str], None]) -> None:
    """`side` as a copy of the empty store `template`, made once with `create` and kept.

    MLflow builds a new store's tables by running its whole chain of schema migrations,
    1.3 s of a study's few seconds of fixed cost here (docs/DESIGN.md, "Empty stores from a
    template"); the result is the same file every time for one MLflow version, which names
    the template. A cache that cannot be written only means the next store is built again."""
    kept = templates() / template
    if kept.exists():
        shutil.copyfile(kept, side)
        return
    create(f"sqlite:///{side}")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=kept.parent, delete=False) as copy:
            partial = Path(copy.name)
        try:
            shutil.copyfile(side, partial)
            os.replace(partial, kept)
        finally:
            partial.unlink(missing_ok=True)  # a copy cut short (a full disk) is not kept
    except OSError as err:
        log.debug("could not keep %s as a template: %s", kept, err)


def create_sqlite(
    url: str, create: Callable[[str], None], key: str, template: str | None = None
) -> None:
    """Make the SQLite database at `url` with `create(side_url)` unless it exists: built in a
    side file under the lock, then renamed into place, so it appears whole or not at all.
    With `template` (a name that changes whenever what `create` makes does), a copy of the
    first one made."""
    path = sqlite_path(url)
    assert path is not None
    check_writable(path.parent, f"{key}={url}")
    if path.exists():
        return
    with _file_lock(path):
        if path.exists():  # another worker made it while this one waited
            return
        side = path.with_name(f".{path.name}.creating")
        side.unlink(missing_ok=True)  # left by a worker killed while creating
        if template:
            _from_template(side, template, create)
        else:
            create(f"sqlite:///{side}")
        os.replace(side, path)
        log.info("created %s", url)


def check_server(url: str) -> None:
    """An MLflow tracking server must answer its health check within CONNECT_TIMEOUT."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=CONNECT_TIMEOUT):
            pass
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(
            f"tracking.uri={url} is not reachable ({reason}); start the server "
            "(mlflow server --host HOST --port PORT ...) or fix the address"
        ) from err
