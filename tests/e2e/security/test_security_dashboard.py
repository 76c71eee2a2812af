"""The dashboard: no token in a URL, a session cookie scripts cannot read or other sites send,
no inline script allowed by its CSP, every value inserted as text."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import StackSettings
from tests.e2e.security.security_helpers import PASSWORD, Account

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(60)]


async def test_the_page_allows_no_inline_script(gw: httpx.AsyncClient) -> None:
    page = await gw.get("/dashboard")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert "frame-ancestors 'none'" in csp
    # Every <script> has a src and no body; no inline event handlers.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
    assert not re.search(r"<script[^>]*>[^<]+</script>", page.text)
    assert not re.search(r"\son[a-z]+=", page.text)
    script = (await gw.get("/dashboard/app.js")).text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    # The script never handles a token: the session is the cookie, set by the server.
    assert "authorization" not in script.lower() and "sessionstorage" not in script.lower()


async def test_the_session_is_an_httponly_strict_cookie(
    gw: httpx.AsyncClient, stack: StackSettings, admin: Account, user: Account
) -> None:
    # Neither a missing session nor a token in the query string opens the stream.
    assert (await gw.get("/dashboard/stream")).status_code == 401
    assert (await gw.get("/dashboard/stream", params={"token": admin.token})).status_code == 401
    assert (await gw.get("/dashboard/data/graph", headers=admin.auth)).status_code == 401
    refused = await gw.post(
        "/dashboard/session", data={"username": user.email, "password": PASSWORD}
    )
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    signed_in = await gw.post(
        "/dashboard/session",
        data={"username": stack.admin_email, "password": stack.admin_password.get_secret_value()},
    )
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert "access_token" not in signed_in.text
    assert (await gw.get("/dashboard/data/graph?limit=5")).status_code == 200
    async with gw.stream("GET", "/dashboard/stream") as stream:
        assert stream.status_code == 200
        first = await anext(stream.aiter_lines())
        assert first.startswith("data: ")
    gw.cookies.clear()
