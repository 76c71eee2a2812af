"""What this service asks the users service: memberships and users, over its HTTP API; a
membership it already holds from the CDC topic (memberships.py) is not asked."""

from __future__ import annotations

import logging

import httpx

from campus_common.errors import UnavailableError
from campus_documents.memberships import Memberships

log = logging.getLogger(__name__)


class UsersClient:
    """A pooled client for the users service, in front of the local membership facts."""

    def __init__(self, http: httpx.AsyncClient, memberships: Memberships | None = None) -> None:
        self.http = http
        self.memberships = memberships

    async def _exists(self, path: str) -> bool:
        try:
            response = await self.http.get(path)
        except httpx.HTTPError as exc:
            log.warning("users service unreachable on GET %s: %r", path, exc)
            raise UnavailableError("the users service is unavailable, try again shortly") from exc
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        log.warning("users service answered %s on GET %s", response.status_code, path)
        raise UnavailableError("the users service is unavailable, try again shortly")

    async def is_member(self, *, group_id: int, user_id: int) -> bool:
        """Whether the user belongs to the group (a 404 group is no membership): known here from
        the CDC topic, else asked live (someone who has just joined can post at once)."""
        if self.memberships is not None and self.memberships.holds(
            group_id=group_id, user_id=user_id
        ):
            return True
        return await self._exists(f"/groups/{group_id}/members/{user_id}")

    async def user_exists(self, *, user_id: int) -> bool:
        """Whether the user exists."""
        return await self._exists(f"/users/{user_id}")
