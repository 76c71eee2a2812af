"""Settings for benchmarks: every variable of .env, secrets included."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr

from campus_common.config import StoreSettings
from campus_common.internal_auth import OperatorAuth, Signer


class BenchSettings(StoreSettings):
    pg_superuser_password: SecretStr
    admin_email: str
    admin_password: SecretStr
    operator_signing_key: SecretStr

    def operator_auth(self) -> OperatorAuth:
        """Signs the operator's service tokens for calls to the internal services."""
        key = self.operator_signing_key.get_secret_value()
        return OperatorAuth(Signer(issuer="operator", private_key=key), self.service_ports())

    def operator_headers(self, audience: str) -> dict[str, str]:
        """The operator's Authorization header for one service, for load tools (wrk) that
        cannot sign per request: a token lives 60 s, longer than any one wrk run here."""
        key = self.operator_signing_key.get_secret_value()
        return Signer(issuer="operator", private_key=key).headers(audience=audience)

    def superuser_dsn(self, database: str) -> str:
        """A database as the superuser (bench schemas, figures against raw tables)."""
        return self.superuser_db(database, self.pg_superuser_password).dsn()


@lru_cache
def settings() -> BenchSettings:
    return BenchSettings()
