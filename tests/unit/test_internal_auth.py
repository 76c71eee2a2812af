"""Service tokens: only a trusted caller's key, for this service, unexpired, EdDSA only."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi import HTTPException

from campus_common.internal_auth import Signer, Verifier, generate_keypair

pytestmark = pytest.mark.unit

GATEWAY = generate_keypair()
OPERATOR = generate_keypair()
GRAPH = generate_keypair()
KEYS = {"gateway": GATEWAY[1], "operator": OPERATOR[1], "graph": GRAPH[1]}


def refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(HTTPException) as exc:
        verifier.verify(token)
    assert exc.value.status_code == 401
    return str(exc.value.detail)


def test_a_trusted_callers_token_names_the_acting_user() -> None:
    token = Signer(issuer="gateway", private_key=GATEWAY[0]).token(audience="users", user_id=9)
    caller = Verifier(audience="users", public_keys=KEYS).verify(token)
    assert (caller.issuer, caller.user_id, caller.admin) == ("gateway", 9, False)
    assert caller.may_act_as(9) and not caller.may_act_as(10)


def test_the_operator_and_the_admin_act_for_anyone() -> None:
    v = Verifier(audience="graph", public_keys=KEYS)
    op = v.verify(Signer(issuer="operator", private_key=OPERATOR[0]).token(audience="graph"))
    admin = v.verify(
        Signer(issuer="gateway", private_key=GATEWAY[0]).token(
            audience="graph", user_id=1, admin=True
        )
    )
    assert op.may_act_as(5) and admin.may_act_as(5) and op.privileged and admin.privileged


def test_a_token_for_another_service_is_refused() -> None:
    token = Signer(issuer="gateway", private_key=GATEWAY[0]).token(audience="graph")
    assert "Audience" in refused(Verifier(audience="users", public_keys=KEYS), token)


def test_a_service_cannot_call_a_service_that_does_not_trust_it() -> None:
    # The graph service may ask users, never documents.
    token = Signer(issuer="graph", private_key=GRAPH[0]).token(audience="documents")
    refused(Verifier(audience="documents", public_keys=KEYS), token)


def test_a_token_signed_with_another_key_is_refused() -> None:
    forged = Signer(issuer="gateway", private_key=generate_keypair()[0]).token(audience="users")
    refused(Verifier(audience="users", public_keys=KEYS), forged)


def test_alg_none_and_hmac_with_the_public_key_are_refused() -> None:
    now = int(time.time())
    claims = {"iss": "gateway", "aud": "users", "iat": now, "exp": now + 60, "jti": "x"}
    v = Verifier(audience="users", public_keys=KEYS)
    refused(v, jwt.encode(claims, None, algorithm="none"))
    refused(v, jwt.encode(claims, GATEWAY[1].encode() * 2, algorithm="HS256"))


def test_an_expired_token_is_refused() -> None:
    signer = Signer(issuer="operator", private_key=OPERATOR[0])
    now = int(time.time())
    claims = {"iss": "operator", "aud": "users", "iat": now - 120, "exp": now - 60, "jti": "x"}
    token = jwt.encode(claims, signer._key, algorithm="EdDSA")
    assert "expired" in refused(Verifier(audience="users", public_keys=KEYS), token)


def test_a_verified_token_is_taken_again_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    v = Verifier(audience="users", public_keys=KEYS)
    token = Signer(issuer="gateway", private_key=GATEWAY[0]).token(audience="users", user_id=4)
    assert v.verify(token).user_id == 4
    # The repeat does not decode again: a token now undecodable still passes from the cache...
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: pytest.fail("decoded twice"))
    assert v.verify(token).user_id == 4
    monkeypatch.undo()
    # ...but past its expiry it is checked again in full (PyJWT then refuses it as expired).
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    checked: list[str] = []
    real = jwt.decode

    def spy(*args: object, **kwargs: object) -> object:
        checked.append("decode")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", spy)
    v.verify(token)
    assert checked


def test_a_refused_token_is_not_remembered() -> None:
    v = Verifier(audience="users", public_keys=KEYS)
    forged = Signer(issuer="gateway", private_key=generate_keypair()[0]).token(audience="users")
    refused(v, forged)
    refused(v, forged)
