from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import CampusSettings, PostgresDsn


class Settings(CampusSettings):
    users_db_password: SecretStr
    users_db_pool_max: int = 10

    @property
    def db(self) -> PostgresDsn:
        return self.users_db(self.users_db_password)


@lru_cache
def get_settings() -> Settings:
    return Settings()
