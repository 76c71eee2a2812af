from functools import lru_cache

from pydantic import SecretStr, field_validator

from campus_common.config import CampusSettings

SERVICES = ("users", "documents", "graph", "timeseries")


class Settings(CampusSettings):
    redis_password: SecretStr
    jwt_secret: SecretStr
    admin_email: str
    admin_password: SecretStr
    gateway_signing_key: SecretStr
    connect_password: SecretStr

    # Off for a replica that only serves requests (one projection per consumer group suffices).
    cache_projection_enabled: bool = True
    jwt_ttl_s: int = 900
    cache_ttl_s: int = 3600
    # How long a profile the gateway has just changed is read from its service, not the cache:
    # the `cache` projection normally refreshes it within milliseconds; this bounds a lagging one.
    cache_stale_ttl_s: int = 30
    processed_event_ttl_s: int = 7 * 24 * 3600
    activity_list_max: int = 50
    hot_posts_max: int = 1000

    # Fixed windows; 0 means unlimited. An admin can override them per user or per address.
    rate_limit_window_s: int = 60
    rate_limit_per_address: int = 3000
    rate_limit_per_user: int = 600
    # POST /auth/token: attempts per address per window, wrong passwords per account before
    # the account is locked for `login_lockout_s` (from its first failure).
    login_window_s: int = 60
    login_limit_per_address: int = 300
    login_failures_per_account: int = 10
    login_lockout_s: int = 900

    upstream_connect_timeout_s: float = 1.0
    upstream_timeout_s: float = 5.0
    upstream_retries: int = 2
    upstream_max_connections: int = 200
    redis_timeout_s: float = 0.5
    redis_max_connections: int = 100

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # HS256 with a short key can be brute-forced offline from any one token (RFC 7518 3.2).
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("CAMPUS_JWT_SECRET must be at least 32 bytes")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg,unused-ignore]  # values come from the environment
