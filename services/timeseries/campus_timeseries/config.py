from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import CampusSettings, PostgresDsn


class Settings(CampusSettings):
    ts_db_password: SecretStr
    ts_db_pool_max: int = 10
    # Off for a replica that only serves requests (one projection per consumer group suffices).
    timeseries_projection_enabled: bool = True
    # A plain-PostgreSQL rollup refresh recomputes the whole view; the runner also waits at
    # least ten times the last refresh's duration, so it never takes more than ~10% of a core.
    ts_rollup_refresh_s: float = 30.0
    ts_partitions_ahead: str = "3 months"
    ts_projection_batch: int = 5000

    @property
    def db(self) -> PostgresDsn:
        return self.ts_db(self.ts_db_password)


@lru_cache
def get_settings() -> Settings:
    return Settings()
