"""Tokens the gateway did not issue as they are: refused with 401, never a 5xx, never accepted.

tests/integration/gateway covers a missing token, an expired one, a wrong signature, the bare
`alg: none` and a deleted user's token; these are the forgeries it leaves out, most of them
signed with the real secret so that only the rule under test can refuse them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
import warnings
from typing import Any

import httpx
import jwt
import orjson
import pytest

from tests.conftest import StackSettings
from tests.e2e.security.security_helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(120)]

WRITE = ("POST", "/groups", {"name": "JWT probe", "course_code": "SEC-J"})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user_id: int | str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": str(user_id), "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    return {k: v for k, v in {**base, "admin": False, **over}.items() if v is not None}


def signed(secret: str, payload: dict[str, Any], *, alg: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT's key-length advice is not what is tested here
        return jwt.encode(payload, secret, algorithm=alg)


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: str | None) -> str:
    """A token with any header at all; HMAC-SHA256 signed when a secret is given."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


async def _write(gw: httpx.AsyncClient, token: str) -> httpx.Response:
    method, path, body = WRITE
    return await gw.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


async def test_forged_tokens_are_refused_with_401(
    gw: httpx.AsyncClient, user: Account, stack: StackSettings
) -> None:
    secret = stack.jwt_secret.get_secret_value()
    good = claims(user.id)
    forged = {
        "HS512 with the right secret": signed(secret, good, alg="HS512"),
        "HS384 with the right secret": signed(secret, good, alg="HS384"),
        **{
            f"alg {alg!r}, no signature": hand_made({"alg": alg, "typ": "JWT"}, good, None)
            for alg in ("none", "None", "NONE", "nOnE")
        },
        "alg none with a valid HS256 signature": hand_made({"alg": "none"}, good, secret),
        "no alg in the header": hand_made({"typ": "JWT"}, good, secret),
        "alg RS256 signed with the secret": hand_made({"alg": "RS256"}, good, secret),
        "not yet valid (nbf)": signed(secret, claims(user.id, nbf=int(time.time()) + 3600)),
        "exp not a number": signed(secret, claims(user.id, exp="tomorrow")),
        "no exp": signed(secret, claims(user.id, exp=None)),
        "no jti": signed(secret, claims(user.id, jti=None)),
        "empty signature": signed(secret, good).rsplit(".", 1)[0] + ".",
        "header only": signed(secret, good).split(".", 1)[0],
    }
    for case, token in forged.items():
        resp = await _write(gw, token)
        assert resp.status_code == 401, (case, resp.status_code, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer", case
    # The control: the same secret and claims, HS256, pass.
    assert (await _write(gw, signed(secret, good))).status_code == 201


@pytest.mark.parametrize(
    "sub",
    [
        "abc",
        "",
        " ",
        "1.5",
        "1e3",
        "-1",
        "0",
        "0x1f",
        " 7",
        "0007",  # not how the gateway writes an id
        "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is True, int() raises
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() reads it as 1
        "99999999999999999999999",  # past bigint
        "9223372036854775808",
    ],
)
async def test_a_subject_that_is_not_a_user_id_is_401(
    gw: httpx.AsyncClient, stack: StackSettings, sub: str
) -> None:
    token = signed(stack.jwt_secret.get_secret_value(), claims(sub))
    resp = await _write(gw, token)
    assert resp.status_code == 401, (sub, resp.status_code, resp.text)


async def test_a_subject_of_the_wrong_type_is_401(
    gw: httpx.AsyncClient, user: Account, stack: StackSettings
) -> None:
    secret = stack.jwt_secret.get_secret_value()
    for sub in (user.id, [str(user.id)], {"id": user.id}, True):
        payload = {**claims(user.id), "sub": sub}
        # Built by hand: PyJWT itself refuses to encode a non-string `sub`.
        resp = await _write(gw, hand_made({"alg": "HS256", "typ": "JWT"}, payload, secret))
        assert resp.status_code == 401, (sub, resp.status_code, resp.text)


async def test_only_a_literal_true_admin_claim_makes_an_admin(
    gw: httpx.AsyncClient, user: Account, stack: StackSettings
) -> None:
    secret = stack.jwt_secret.get_secret_value()
    for admin in ("true", "True", 1, [True], {"admin": True}):
        token = signed(secret, claims(user.id, admin=admin))
        resp = await gw.get("/admin/consumers", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 403, (admin, resp.status_code, resp.text)


async def test_malformed_authorization_headers_are_401(
    gw: httpx.AsyncClient, user: Account
) -> None:
    method, path, body = WRITE
    for header in (
        user.token,  # no scheme
        f"Basic {user.token}",
        f"Bearer{user.token}",
        "Bearer",
        f"Bearer {user.token}.extra",
        f"Bearer {user.token[:-4]}",
        f"Bearer {'A' * 8000}",
    ):
        resp = await gw.request(method, path, json=body, headers={"Authorization": header})
        assert resp.status_code == 401, (header[:30], resp.status_code, resp.text)
