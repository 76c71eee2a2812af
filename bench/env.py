"""Settings for benchmarks: every variable of .env, secrets included."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import CampusSettings, PostgresDsn


class BenchSettings(CampusSettings):
    pg_superuser_password: SecretStr
    users_db_password: SecretStr
    ts_db_password: SecretStr
    neo4j_password: SecretStr
    redis_password: SecretStr
    admin_email: str
    admin_password: SecretStr

    def superuser_dsn(self, database: str) -> str:
        return PostgresDsn(
            host=self.pg_host,
            port=self.pg_port,
            database=database,
            user="postgres",
            password=self.pg_superuser_password,
        ).dsn()


@lru_cache
def settings() -> BenchSettings:
    return BenchSettings()
