"""Migrations of both PostgreSQL databases: `python -m campus_common.migrate DATABASE PATH...`.

Each numbered `.sql` file (or a named file such as TimeScaleDB.sql) is applied once, in name
order, in one transaction together with the row that records it. The run:
- holds a PostgreSQL advisory lock for its whole length, so two migrators (two `make up`s, a Helm
  hook retried while the first still runs) never apply the same file twice;
- records each file's SHA-256 and refuses to run (exit status 1, nothing applied) when a file
  that was already applied has changed since: write a new migration instead;
- runs the files through psql, because TimeScaleDB.sql chooses its storage path with psql's
  `\\if` (no SQL-only migration library can run it, and none of yoyo, alembic or dbmate checks
  the content of an applied file).

Connection: CAMPUS_* variables through campus_common.config (the superuser's password is read
from CAMPUS_PG_SUPERUSER_PASSWORD); psql gets the password through its environment, never its
arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pydantic import SecretStr

from campus_common.config import CampusSettings, PostgresDsn

log = logging.getLogger("campus.migrate")

TABLE = "schema_migrations"
# One key for every database of the project: a second migrator waits for the first.
LOCK_KEY = 0x63616D707573  # "campus"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT {TABLE}_pkey PRIMARY KEY (name)
)
"""


class MigrateSettings(CampusSettings):
    """The superuser, who owns the schemas the migrations create."""

    pg_superuser_password: SecretStr


@dataclass(frozen=True, slots=True)
class Source:
    """One migration file and the checksum of its content."""

    name: str
    path: Path
    checksum: str


class ChangedMigrationError(Exception):
    """An applied migration's file no longer has the content that was applied."""


def sources(paths: Sequence[Path]) -> list[Source]:
    """The `.sql` files named or inside the named folders, in name order within each."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.sql")) if p.is_dir() else [p]
    return [Source(f.name, f, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files]


def plan(files: Sequence[Source], applied: dict[str, str]) -> list[Source]:
    """The files still to apply; raises when an applied one has changed (nothing is applied)."""
    changed = [f.name for f in files if f.name in applied and applied[f.name] != f.checksum]
    if changed:
        raise ChangedMigrationError(
            f"{', '.join(changed)} changed after being applied; restore the applied content "
            "and add a new numbered migration instead"
        )
    return [f for f in files if f.name not in applied]


def _psql(dsn: PostgresDsn, source: Source) -> None:
    """Apply one file and record it, in one transaction (psql -1)."""
    record = (
        f"\nINSERT INTO {TABLE} (name, checksum) VALUES "
        f"('{source.name}', '{source.checksum}');\n"  # both from our own files: no user input
    )
    env = {
        **os.environ,
        "PGHOST": dsn.host,
        "PGPORT": str(dsn.port),
        "PGUSER": dsn.user,
        "PGDATABASE": dsn.database,
        "PGPASSWORD": dsn.password.get_secret_value(),
    }
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", "-"],  # noqa: S607
        input=source.path.read_bytes() + record.encode(),
        env=env,
        check=True,
        timeout=600,
    )


def _lock(conn: psycopg.Connection[tuple[object, ...]], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"another migration held the lock for {timeout_s:.0f} s")
        log.info("another migration is running; waiting for its lock")
        time.sleep(1)


def migrate(dsn: PostgresDsn, paths: Sequence[Path], *, lock_timeout_s: float = 600) -> list[str]:
    """Apply what is pending under the lock; returns the names applied."""
    files = sources(paths)
    with psycopg.connect(dsn.dsn(), autocommit=True, connect_timeout=10) as conn:
        _lock(conn, timeout_s=lock_timeout_s)
        conn.execute(CREATE_TABLE)
        rows = conn.execute(f"SELECT name, checksum FROM {TABLE}").fetchall()  # noqa: S608
        todo = plan(files, {str(name): str(checksum) for name, checksum in rows})
        for source in todo:
            log.info("migrating %s: %s", dsn.database, source.name)
            _psql(dsn, source)
        # The lock goes with the session when the connection closes.
    return [s.name for s in todo]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: DATABASE PATH..."""
    parser = argparse.ArgumentParser(prog="python -m campus_common.migrate", description=__doc__)
    parser.add_argument("database", help="campus or campus_ts")
    parser.add_argument("paths", nargs="+", type=Path, help="folders of .sql files, or files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    settings = MigrateSettings()
    dsn = settings.superuser_db(args.database, settings.pg_superuser_password)
    try:
        migrate(dsn, args.paths)
    except ChangedMigrationError as exc:
        log.error("refusing to migrate %s: %s", args.database, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
