from functools import lru_cache
from typing import Any

from pydantic import Field, SecretStr

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
    # The first feed page per group, kept in memory and dropped by the events (see feed.py).
    feed_cache_enabled: bool = True
    feed_cache_groups: int = Field(default=1000, ge=1)
    feed_cache_page: int = Field(default=20, ge=1, le=100)
    # A backstop for writes that bypass the service; the events drop a page much sooner.
    feed_cache_ttl_s: float = Field(default=60.0, gt=0)
    # No page is served once the follower has not proved it is caught up for this long.
    feed_cache_max_lag_s: float = Field(default=5.0, gt=0)

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
