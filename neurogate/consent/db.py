"""Database engine and sessions: embedded SQLite by default, PostgreSQL by URL.

SQLite runs in WAL mode with ``synchronous=FULL`` so a commit is on disk before the
gateway acknowledges it (a revocation survives ``kill -9`` right after the response).
Writers take SQLite's write lock at ``BEGIN`` (``BEGIN IMMEDIATE``) so that two
transactions never race to append the same ledger index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from neurogate.errors import StorageError

_MIGRATIONS = Path(__file__).with_name("migrations")
_upgrade_lock = threading.Lock()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy issue BEGIN itself (pysqlite's implicit transactions are off).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class _EngineCache:
    """One engine per database URL, the most recent few kept; an engine that falls out is
    disposed (its pooled connections closed), never left for the garbage collector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, url: str) -> Engine:
        with self._lock:
            engine = self._engines.get(url)
            if engine is not None:
                self._engines.move_to_end(url)
                return engine
            engine = self._engines[url] = _create_engine(url)
            while len(self._engines) > self.size:
                self._engines.popitem(last=False)[1].dispose()
            return engine

    def cache_clear(self) -> None:
        """Dispose of every engine (tests; a process that changes databases)."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            engine.dispose()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, pool_pre_ping=True
        )
        _configure_sqlite(engine)
        return engine
    # A store that stops answering (a cut link, a dead host) must fail a connection within
    # seconds rather than after the kernel's TCP retry timeout (minutes), so that requests
    # answer 503 and the gateway recovers once the store is back.
    connect_args: dict[str, object] = {
        "connect_timeout": 3, "keepalives": 1, "keepalives_idle": 5,
        "keepalives_interval": 2, "keepalives_count": 2, "tcp_user_timeout": 5000,
    } if parsed.get_backend_name() == "postgresql" else {}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args=connect_args)


get_engine = _EngineCache(size=8)
"""The engine for a database URL (one per URL per process)."""


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    try:
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    except OperationalError as exc:
        msg = "The consent store cannot be reached; nothing was changed. Try again shortly."
        raise StorageError(msg) from exc


def hold(session: Session, row: object) -> None:
    """Keep ``row`` in ``session`` until the session ends.

    The identity map holds unchanged rows weakly: a subject read for an access check and
    then dropped would be read again by each later step of the same transaction."""
    session.info.setdefault(_HELD, []).append(row)


_HELD = "neurogate.held"


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest)."""
    with _upgrade_lock:
        get_engine(url)  # creates the SQLite parent directory if needed
        command.upgrade(alembic_config(url), revision)


__all__ = ["alembic_config", "get_engine", "hold", "session_scope", "upgrade"]
