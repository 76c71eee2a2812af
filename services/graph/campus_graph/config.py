from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import CampusSettings


class Settings(CampusSettings):
    neo4j_password: SecretStr
    neo4j_user: str = "neo4j"
    # Off for a replica that only serves requests (one projection per consumer group suffices).
    graph_projection_enabled: bool = True
    # Short, so a request fails with 503 quickly while Neo4j is down instead of hanging.
    neo4j_connect_timeout_s: float = 3.0
    neo4j_retry_time_s: float = 5.0
    users_timeout_s: float = 5.0
    outbox_poll_s: float = 1.0
    outbox_batch: int = 200

    @property
    def neo4j_uri(self) -> str:
        return f"bolt://{self.neo4j_host}:{self.neo4j_bolt_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
