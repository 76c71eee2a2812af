"""campus_common.migrate against the stack's real PostgreSQL, on scratch databases it drops:
each file once, a changed applied file refused, two migrators at once, psql's \\if honoured."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from campus_common.config import PostgresDsn
from campus_common.migrate import TABLE, ChangedMigrationError, migrate
from tests.conftest import ROOT, StackSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch(stack: StackSettings) -> Iterator[PostgresDsn]:
    name = f"migrate_test_{uuid.uuid4().hex[:10]}"
    admin = stack.superuser_db("postgres", stack.pg_superuser_password).dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield stack.superuser_db(name, stack.pg_superuser_password)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def applied(dsn: PostgresDsn) -> list[str]:
    with psycopg.connect(dsn.dsn()) as conn:
        return [r[0] for r in conn.execute(f"SELECT name FROM {TABLE} ORDER BY name")]


def tables(dsn: PostgresDsn) -> set[str]:
    with psycopg.connect(dsn.dsn()) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_each_file_once_in_order_and_a_changed_one_refused(
    scratch: PostgresDsn, tmp_path: Path
) -> None:
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (id int);")
    # psql's conditionals (TimeScaleDB.sql picks its storage path with them) must work.
    (tmp_path / "002_b.sql").write_text(
        "SELECT true AS yes \\gset\n\\if :yes\nCREATE TABLE b (id int);\n\\else\n"
        "CREATE TABLE not_b (id int);\n\\endif\n"
    )
    assert migrate(scratch, [tmp_path]) == ["001_a.sql", "002_b.sql"]
    assert migrate(scratch, [tmp_path]) == []
    assert tables(scratch) == {"a", "b", TABLE}

    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (id bigint);")
    (tmp_path / "003_c.sql").write_text("CREATE TABLE c (id int);")
    with pytest.raises(ChangedMigrationError, match=r"001_a\.sql"):
        migrate(scratch, [tmp_path])
    assert applied(scratch) == ["001_a.sql", "002_b.sql"]  # 003 was not applied either
    assert "c" not in tables(scratch)


def test_a_failing_file_leaves_nothing_behind(scratch: PostgresDsn, tmp_path: Path) -> None:
    (tmp_path / "001_half.sql").write_text("CREATE TABLE half (id int);\nSELECT 1/0;\n")
    with pytest.raises(subprocess.CalledProcessError):
        migrate(scratch, [tmp_path])
    assert tables(scratch) == {TABLE} and applied(scratch) == []


def test_two_migrators_at_once_apply_each_file_once(scratch: PostgresDsn, tmp_path: Path) -> None:
    # Not idempotent on purpose: a second application would fail on the duplicate key.
    (tmp_path / "001_slow.sql").write_text(
        "CREATE TABLE once (id int PRIMARY KEY);\nSELECT pg_sleep(1);\nINSERT INTO once VALUES (1);"
    )
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(scratch, [tmp_path], lock_timeout_s=30))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(results) == [[], ["001_slow.sql"]]


def test_the_command_exits_1_on_a_changed_file(
    stack: StackSettings, scratch: PostgresDsn, tmp_path: Path
) -> None:
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (id int);")
    command = [sys.executable, "-m", "campus_common.migrate", scratch.database, str(tmp_path)]
    assert subprocess.run(command, cwd=ROOT, timeout=60).returncode == 0
    (tmp_path / "001_a.sql").write_text("CREATE TABLE a (id text);")
    done = subprocess.run(command, cwd=ROOT, timeout=60, capture_output=True, text=True)
    assert done.returncode == 1 and "refusing to migrate" in done.stderr


def test_the_stack_databases_are_migrated_with_the_checksums_of_the_sources(
    stack: StackSettings,
) -> None:
    # make up ran stack/postgres/migrate.sh: the applied log matches the files as they are now.
    for database, paths in (("campus", [ROOT / "sql"]), ("campus_ts", [ROOT / "TimeScaleDB.sql"])):
        dsn = stack.superuser_db(database, stack.pg_superuser_password)
        assert migrate(dsn, paths) == [], database


def test_the_real_sources_apply_to_empty_databases(stack: StackSettings) -> None:
    # What a fresh clone's `make up` does, on scratch databases: every file, in order, once.
    admin = stack.superuser_db("postgres", stack.pg_superuser_password).dsn()
    sources = {"sql": [ROOT / "sql"], "ts": [ROOT / "TimeScaleDB.sql"]}
    for kind, paths in sources.items():
        name = f"migrate_test_{kind}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            dsn = stack.superuser_db(name, stack.pg_superuser_password)
            expected = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
            assert migrate(dsn, paths) == (expected if kind == "sql" else ["TimeScaleDB.sql"])
            assert migrate(dsn, paths) == []
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
