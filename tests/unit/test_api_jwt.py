"""Platform JWTs over a real loopback server: an API token exchanged for one, its claims, expiry, rotation."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from agentbus.events import utcnow
from agentbus.services.ingress.api.access import Identity, Unauthenticated
from agentbus.services.ingress.api.auth_jwt import API_AUDIENCE, LOGIN_AUDIENCE, REFRESH_S, Signer
from agentbus.services.ingress.api.auth_keys import SigningKey
from tests.unit.fakes_api import FakeSigningKeys, served_api


async def test_an_api_token_is_exchanged_for_a_short_lived_jwt_that_authenticates() -> None:
    async with served_api() as api:
        token = await api.token("acme", "operator", name="ci")
        [token_id] = api.tokens.rows
        resp = await api.call("POST", "/auth/token", token)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["token_type"] == "Bearer" and 890 <= out["expires_in"] <= 900
        assert (out["tenant"], out["role"], out["subject"]) == ("acme", "operator", f"token:{token_id}")
        claims = jwt.decode(out["access_token"], options={"verify_signature": False})
        assert set(claims) >= {"sub", "tenant", "role", "exp", "iat", "jti", "iss"}
        assert claims["exp"] - claims["iat"] == 900 and claims["iss"] == "agentbus"
        assert jwt.get_unverified_header(out["access_token"])["kid"] == "k0"

        me = await api.call("GET", "/me", out["access_token"])
        assert me.status_code == 200 and (me.json()["tenant"], me.json()["role"]) == ("acme", "operator")
        assert me.json()["token_id"] == claims["jti"]
        # the JWT's role is the token's: a viewer's JWT cannot write, an acme JWT cannot see globex
        assert (await api.call("GET", "/tenants/globex/jobs", out["access_token"])).status_code == 404
        short = await api.call("POST", "/auth/token", token, json={"ttl_s": 120})
        assert short.json()["expires_in"] <= 120
        assert (await api.call("POST", "/auth/token", token, json={"ttl_s": 5})).status_code == 422
        # a JWT is not exchanged for another (a stolen JWT cannot be kept alive)
        again = await api.call("POST", "/auth/token", out["access_token"])
        assert again.status_code == 403 and "API token" in again.json()["error"]


async def test_an_expired_or_forged_jwt_is_a_401_with_the_reason() -> None:
    async with served_api() as api:
        who = Identity("abc", "ci", "acme", "admin")
        expired, _ = await api.signer.issue(who, ttl_s=-1)
        resp = await api.call("GET", "/me", expired)
        assert resp.status_code == 401 and resp.json()["error"] == "token expired"
        assert resp.headers["www-authenticate"].startswith("Bearer")

        good, _ = await api.signer.issue(who)
        head, body, sig = good.split(".")
        forged = jwt.encode({**jwt.decode(good, options={"verify_signature": False}), "role": "owner",
                             "tenant": None}, b"x" * 32, algorithm="HS256", headers={"kid": "k0"})
        # the signature's first character changed (its last two may stand for the same bytes: base64url padding)
        tampered = ("B" if sig[0] == "A" else "A") + sig[1:]
        for bad, reason in [(f"{head}.{body}.{tampered}", "invalid token"), (forged, "invalid token"),
                            (jwt.encode({"sub": "x"}, b"y" * 32, headers={"kid": "nope"}), "unknown key"),
                            ("a.b.c", "malformed token")]:
            resp = await api.call("GET", "/me", bad)
            assert resp.status_code == 401 and reason in resp.json()["error"], (bad, resp.text)
        # the login flow's state cookie is signed with the same key but is no API credential
        cookie, _ = await api.signer.sign({"sub": "login", "tenant": "acme", "role": "admin"}, LOGIN_AUDIENCE, 60)
        resp = await api.call("GET", "/me", cookie)
        assert resp.status_code == 401 and "InvalidAudience" in resp.json()["error"]


async def test_a_jwt_never_outlives_the_api_token_it_came_from() -> None:
    async with served_api() as api:
        token = await api.token("acme", "viewer", expires_days=60 / 86400)
        out = (await api.call("POST", "/auth/token", token)).json()
        assert out["expires_in"] <= 60


async def test_a_rotated_key_still_verifies_what_it_signed_and_replicas_learn_the_new_key() -> None:
    keys = FakeSigningKeys()
    one, other = Signer(keys), Signer(keys, unknown_kid_refresh_s=0)  # two replicas on one key table
    who = Identity("abc", "ci", "acme", "viewer")
    before, _ = await one.issue(who)
    assert (await other.identity(before)).subject == "token:abc"
    new = await keys.rotate()
    fresh = Signer(keys)  # a replica that reads the table after the rotation signs with the new key
    after, _ = await fresh.issue(who)
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    reads = keys.reads
    assert (await other.identity(after)).role == "viewer"  # an unknown kid makes the replica read the keys again
    assert keys.reads == reads + 1
    assert (await other.identity(before)).role == "viewer"  # the retired key verifies what it signed before

    retired = keys.rows[1]
    late = SigningKey(retired.kid, retired.secret, retired.created_at,
                      retired_at=utcnow() - timedelta(seconds=REFRESH_S + 5))
    keys.rows[1] = late
    stale = Signer(keys)
    stale._keys = [SigningKey(late.kid, late.secret, late.created_at)]  # a replica that missed the rotation
    stale._loaded = float("inf")
    signed_late, _ = await stale.sign({"sub": "token:abc", "tenant": "acme", "role": "viewer"}, API_AUDIENCE, 600)
    with pytest.raises(Unauthenticated, match="retired key"):
        await Signer(keys).identity(signed_late)
