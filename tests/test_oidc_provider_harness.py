"""The OpenID Connect provider process the upstream-login tests run against behaves like a real provider."""

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests.servers.oidc_provider import TAMPER_MODES, OidcProvider

CLIENT_ID = "muster-upstream"
CLIENT_SECRET = "upstream-secret"
CALLBACK = "http://127.0.0.1:8000/oauth/upstream/callback"
CLAIMS = {"email": "ada@example.com", "email_verified": True, "name": "Ada", "groups": ["admins", "staff"]}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture(autouse=True)
def _controls_off(provider: OidcProvider) -> Iterator[None]:
    yield
    provider.reset()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        yield client


def authorize_url(provider: OidcProvider, *, nonce: str, challenge: str, state: str, scope: str) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{provider.authorization_endpoint}?{urlencode(params)}"


def sign_in_and_exchange(
    provider: OidcProvider,
    http: httpx.Client,
    sub: str,
    *,
    scope: str = "openid email profile",
    client_auth: str = "client_secret_basic",
    sent_verifier: str | None = None,
) -> tuple[httpx.Response, str]:
    """Authorize (PKCE S256, nonce), sign `sub` in, exchange the code; the token answer and the nonce sent."""
    nonce, state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    location = provider.sign_in(
        authorize_url(provider, nonce=nonce, challenge=challenge, state=state, scope=scope), sub
    )
    callback = urlsplit(location)
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK, location
    query = parse_qs(callback.query)
    assert query["state"] == [state], location
    data = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": CALLBACK}
    data["code_verifier"] = sent_verifier or verifier
    return token_request(provider, http, data, client_auth), nonce


def token_request(provider: OidcProvider, http: httpx.Client, data: dict[str, str], client_auth: str) -> httpx.Response:
    if client_auth == "client_secret_basic":
        return http.post(provider.token_endpoint, data=data, auth=(CLIENT_ID, CLIENT_SECRET))
    assert client_auth == "client_secret_post", client_auth
    return http.post(provider.token_endpoint, data={**data, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})


def refresh(provider: OidcProvider, http: httpx.Client, refresh_token: str, client_auth: str) -> httpx.Response:
    return token_request(provider, http, {"grant_type": "refresh_token", "refresh_token": refresh_token}, client_auth)


def verified_claims(provider: OidcProvider, id_token: str) -> dict[str, Any]:
    """The id_token's claims once its signature (key from the JWKS, by kid), aud and iss check out."""
    key = jwt.PyJWKClient(provider.jwks_uri, cache_keys=False).get_signing_key_from_jwt(id_token)
    return dict(jwt.decode(id_token, key.key, algorithms=["RS256"], audience=CLIENT_ID, issuer=provider.issuer))


def test_discovery_names_the_issuer_and_its_endpoints(provider: OidcProvider, http: httpx.Client) -> None:
    metadata = http.get(f"{provider.issuer}/.well-known/openid-configuration").json()

    assert provider.issuer == f"http://127.0.0.1:{provider.port}"
    assert metadata["issuer"] == provider.issuer
    assert metadata["authorization_endpoint"] == provider.authorization_endpoint
    assert metadata["token_endpoint"] == provider.token_endpoint
    assert metadata["userinfo_endpoint"] == provider.userinfo_endpoint
    assert metadata["jwks_uri"] == provider.jwks_uri
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert [key["kty"] for key in http.get(provider.jwks_uri).json()["keys"]] == ["RSA"]


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_code_flow_gives_a_signed_id_token_and_a_working_refresh_token(
    provider: OidcProvider, http: httpx.Client, client_auth: str
) -> None:
    sub = f"ada-{client_auth}"
    provider.set_user(sub, CLAIMS)

    answer, nonce = sign_in_and_exchange(provider, http, sub, client_auth=client_auth)

    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    claims = verified_claims(provider, tokens["id_token"])
    assert claims["sub"] == sub
    assert claims["nonce"] == nonce
    assert claims["aud"] == [CLIENT_ID]
    assert {name: claims[name] for name in CLAIMS} == CLAIMS
    userinfo = http.get(provider.userinfo_endpoint, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.json() == {**CLAIMS, "sub": sub}

    refreshed = refresh(provider, http, tokens["refresh_token"], client_auth)

    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["access_token"] != tokens["access_token"]
    assert "refresh_token" not in refreshed.json()  # the mock does not rotate; the old one stays valid
    assert refresh(provider, http, tokens["refresh_token"], client_auth).status_code == 200


def test_scopes_filter_standard_claims_only(provider: OidcProvider, http: httpx.Client) -> None:
    provider.set_user("grace", CLAIMS)

    answer, _ = sign_in_and_exchange(provider, http, "grace", scope="openid offline_access groups")

    tokens = answer.json()
    assert tokens["scope"] == "openid"
    claims = verified_claims(provider, tokens["id_token"])
    assert "email" not in claims and "email_verified" not in claims and "name" not in claims
    assert claims["groups"] == CLAIMS["groups"]


def test_deny_redirects_with_access_denied(provider: OidcProvider) -> None:
    url = authorize_url(provider, nonce="n", challenge="c" * 43, state="s", scope="openid")

    location = provider.deny(url)

    assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]
    assert parse_qs(urlsplit(location).query)["state"] == ["s"]


def _check_nonce(provider: OidcProvider, id_token: str, nonce: str) -> None:
    claims = verified_claims(provider, id_token)
    if claims["nonce"] != nonce:
        raise ValueError("nonce mismatch")


_TAMPER_FAILURES: dict[str, type[Exception]] = {
    "wrong-aud": jwt.InvalidAudienceError,
    "wrong-iss": jwt.InvalidIssuerError,
    "bad-signature": jwt.InvalidSignatureError,
    "alg-none": jwt.InvalidAlgorithmError,
    "nonce-mismatch": ValueError,
}


@pytest.mark.parametrize("mode", TAMPER_MODES)
def test_tampered_id_tokens_fail_their_check(provider: OidcProvider, http: httpx.Client, mode: str) -> None:
    provider.set_user("mallory-victim", CLAIMS)
    provider.tamper(mode)

    answer, nonce = sign_in_and_exchange(provider, http, "mallory-victim")

    assert answer.status_code == 200, answer.text
    id_token = answer.json()["id_token"]
    with pytest.raises(_TAMPER_FAILURES[mode]):
        _check_nonce(provider, id_token, nonce)
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == ("none" if mode == "alg-none" else "RS256")
    assert header["kid"] == http.get(provider.jwks_uri).json()["keys"][0]["kid"]
    assert jwt.decode(id_token, options={"verify_signature": False})["sub"] == "mallory-victim"

    provider.tamper(None)
    untouched, nonce = sign_in_and_exchange(provider, http, "mallory-victim")
    _check_nonce(provider, untouched.json()["id_token"], nonce)


def test_token_failure_answers_the_status_and_counters_count_every_request(
    provider: OidcProvider, http: httpx.Client
) -> None:
    provider.set_user("linus", CLAIMS)
    first, _ = sign_in_and_exchange(provider, http, "linus")
    provider.reset_counters()
    provider.token_failure(503)

    failed, _ = sign_in_and_exchange(provider, http, "linus")
    failed_refresh = refresh(provider, http, first.json()["refresh_token"], "client_secret_basic")

    assert failed.status_code == 503
    assert failed.json() == {"error": "temporarily_unavailable"}
    assert failed_refresh.status_code == 503
    assert provider.counters() == {"authorization_code": 1, "refresh_token": 1}

    provider.token_failure(None)
    assert refresh(provider, http, first.json()["refresh_token"], "client_secret_basic").status_code == 200
    assert provider.counters() == {"authorization_code": 1, "refresh_token": 2}
    provider.reset_counters()
    assert provider.counters() == {"authorization_code": 0, "refresh_token": 0}


@pytest.mark.parametrize("how", ["revoke_user_tokens", "expire_refresh_tokens"])
def test_forgotten_refresh_tokens_answer_invalid_grant(provider: OidcProvider, http: httpx.Client, how: str) -> None:
    provider.set_user("margaret", CLAIMS)
    answer, _ = sign_in_and_exchange(provider, http, "margaret")
    refresh_token = answer.json()["refresh_token"]

    if how == "revoke_user_tokens":
        provider.revoke_user_tokens("margaret")
    else:
        provider.expire_refresh_tokens()
    refused = refresh(provider, http, refresh_token, "client_secret_basic")

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_a_code_exchange_with_the_wrong_pkce_verifier_is_refused(provider: OidcProvider, http: httpx.Client) -> None:
    answer, _ = sign_in_and_exchange(provider, http, "pkce@example.com", sent_verifier=secrets.token_urlsafe(48))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
