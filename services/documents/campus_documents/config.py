from functools import lru_cache
from typing import Any

from pydantic import SecretStr

from campus_common import topics
from campus_common.config import CampusSettings


class Settings(CampusSettings):
    docs_db_password: SecretStr
    documents_signing_key: SecretStr
    # FerretDB v1 can hold two PostgreSQL connections per client operation (a read, then the
    # write) from a pool of 40: keep our side well under half of it so it never deadlocks.
    docs_db_pool_max: int = 12
    users_timeout_s: float = 3.0
    relay_batch: int = 500
    relay_idle_s: float = 1.0
    # Where the outbox relay publishes; tests run private instances on a topic of their own.
    docs_events_topic: str = topics.DOCUMENT_EVENTS

    def mongo_options(self) -> dict[str, Any]:
        """Keyword arguments for AsyncMongoClient: the address from CampusSettings, our pool."""
        return {
            **self.mongo_client_options(self.docs_db_password),
            "maxPoolSize": self.docs_db_pool_max,
            "serverSelectionTimeoutMS": 3000,
            "connectTimeoutMS": 3000,
            "socketTimeoutMS": 5000,
            "appname": "campus-documents",
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
