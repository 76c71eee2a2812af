from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import CampusSettings


class Settings(CampusSettings):
    neo4j_password: SecretStr
    graph_signing_key: SecretStr
    neo4j_user: str = "neo4j"
    # Off for a replica that only serves requests (one projection per consumer group suffices).
    graph_projection_enabled: bool = True
    # Short, so a request fails with 503 quickly while Neo4j is down instead of hanging: the
    # driver's retries must give up well inside the gateway's 5 s upstream timeout, or the client
    # sees the gateway's 504 instead of this service's 503 (the projection retries on its own).
    neo4j_connect_timeout_s: float = 2.0
    neo4j_retry_time_s: float = 1.5
    users_timeout_s: float = 5.0
    outbox_poll_s: float = 1.0
    outbox_batch: int = 200


@lru_cache
def get_settings() -> Settings:
    return Settings()
