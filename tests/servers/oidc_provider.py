"""A real OpenID Connect provider process (oidc-provider-mock) with test controls, and a harness that runs it."""

# Run it: `python -m tests.servers.oidc_provider --port N [--token-max-age SECONDS] [--no-kid]`; address it only as
# http://127.0.0.1:<port> (the issuer is the request's host URL). It is the mock's Flask app (nonce required) plus:
#
#   POST /_control/token-failure {"status": 503 | null}
#       every later POST /oauth2/token answers that status with {"error": "temporarily_unavailable"}; null: off.
#   POST /_control/tamper {"mode": "wrong-aud" | "wrong-iss" | "bad-signature" | "nonce-mismatch" | "alg-none" | null}
#       every successful token response carrying an id_token gets a re-made one (see remade_id_token); null: off.
#   GET  /_control/counters -> {"authorization_code": n, "refresh_token": n}
#       POST /oauth2/token requests received per grant_type, also those answered by token-failure or refused.
#   POST /_control/counters/reset (the revocations too)
#   POST /_control/expire-refresh-tokens
#       forgets every refresh token (all users), so any refresh answers 400 invalid_grant.
#   GET  /_control/revocations -> {"revocations": [token_type_hint, ...]}
#       what POST /oauth2/revoke (RFC 7009, advertised in discovery; client authentication required) received;
#       it forgets the refresh token it is given.
#
# And the mock's own API: PUT /users/<sub> (a JSON object of claims) and POST /users/<sub>/revoke-tokens, which
# forgets that user's access and refresh tokens (a refresh then answers 400 {"error": "invalid_grant"}).
#
# Four changes to the mock's behaviour: its id_tokens carry no kid, so each gets the JWKS key's kid in its header
# (--no-kid: left as the mock makes them); Authlib lets a refresh authenticate with client_secret_basic only, so
# client_secret_post is accepted too, as for the code grant; the mock does not check PKCE, so a code whose
# authorize request had a code_challenge needs the matching S256 code_verifier (else 400 invalid_grant); and its
# Deny answers error=access_denied without the request's state, which is added back.
#
# Quirks of oidc-provider-mock 0.3.4 (with Authlib 1.9) that tests can rely on:
#   * Any client id, secret and redirect URI is accepted; the token endpoint wants client_secret_basic or
#     client_secret_post (a public client, auth method none, gets 401 invalid_client).
#   * A sign-in with an unknown sub makes the user {"email": sub}. An authorize request without nonce is sent back
#     to the redirect URI with error=invalid_request. `aud` is a list: [client_id].
#   * A refresh token comes with every code exchange. Its recorded expiry (that of the access token) is never
#     checked: it stays valid until revoked. A refresh answers a new access token only: no new refresh token (no
#     rotation; the old one stays valid), no id_token; the previous access token stops working. The refreshed
#     access token lives 3600 s whatever --token-max-age says; only the code exchange's access token and id_token
#     follow --token-max-age. A refresh by another client id answers 400 invalid_grant.
#   * Granted scopes are filtered to openid, profile, email, address and phone; others (offline_access, groups) are
#     accepted at authorize and silently dropped from the token's scope. Without openid there is no id_token.
#   * Claims (id_token and userinfo alike): the standard ones only when their scope was granted (email and
#     email_verified need `email`, name and the like need `profile`); any other claim (groups) always.

import argparse
import base64
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from datetime import timedelta
from types import FrameType, TracebackType
from typing import IO, Any, Self
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import authlib.deprecate
import flask
import httpx
import werkzeug.serving
from joserfc import jwt
from joserfc.jwk import RSAKey

with warnings.catch_warnings():
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)  # the mock imports authlib.jose
    import oidc_provider_mock
    from oidc_provider_mock import _app as oidc_provider_mock_app

from tests.servers.processes import free_port, http_problem, start_until_ready, stop_process_group

START_TIMEOUT_SECONDS = 20.0
TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
DISCOVERY_PATH = "/.well-known/openid-configuration"
GRANT_TYPES = ("authorization_code", "refresh_token")
TAMPER_MODES = ("wrong-aud", "wrong-iss", "bad-signature", "nonce-mismatch", "alg-none")
# What the re-made id_token claims get, per mode; bad-signature and alg-none keep the claims.
_TAMPERED_CLAIMS: dict[str, tuple[str, str]] = {
    "wrong-aud": ("aud", "someone-else"),
    "wrong-iss": ("iss", "http://evil.example"),
    "nonce-mismatch": ("nonce", "not-the-nonce"),
}


class OidcProviderError(RuntimeError):
    """The provider could not be started or asked something."""


# --- the provider process ---


def _b64url_json(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _b64url_decode_json(segment: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(value, dict), value
    return value


class _Controls:
    """What the test controls have set, shared by the server's request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failure_status: int | None = None
        self.tamper_mode: str | None = None
        self.counters = dict.fromkeys(GRANT_TYPES, 0)
        self.challenges: dict[str, str] = {}  # code -> the S256 code_challenge its authorize request carried
        self.revocations: list[str] = []  # the token_type_hint of each revocation request received
        self._provider_key: RSAKey | None = None
        self._stranger_key: RSAKey | None = None

    def provider_key(self, storage: Any) -> RSAKey:
        """The mock's signing key (the one its JWKS publishes, kid included), as a joserfc key."""
        with self.lock:
            if self._provider_key is None:
                self._provider_key = RSAKey.import_key(storage.jwk.as_dict(is_private=True))
            return self._provider_key

    def stranger_key(self) -> RSAKey:
        """An RSA key the provider never published, made once."""
        with self.lock:
            if self._stranger_key is None:
                self._stranger_key = RSAKey.generate_key(2048)
            return self._stranger_key


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def remade_id_token(id_token: str, mode: str | None, provider_key: RSAKey, stranger_key: RSAKey, *, kid: bool) -> str:
    """The id_token re-made as `mode` asks (None: as it was), with the provider's kid in the header when `kid`.

    wrong-aud, wrong-iss and nonce-mismatch change one claim and sign with the provider's key; bad-signature keeps
    the claims and signs with a key the provider never published; alg-none keeps the claims, unsigned (`alg: none`,
    the kid kept).
    """
    claims = _b64url_decode_json(id_token.split(".")[1])
    kid_header = {"kid": provider_key.kid} if kid else {}
    if mode == "alg-none":
        return f"{_b64url_json({'alg': 'none', 'typ': 'JWT', **kid_header})}.{_b64url_json(claims)}."
    header = {"alg": "RS256", "typ": "JWT", **kid_header}
    if mode == "bad-signature":
        return jwt.encode(header, claims, stranger_key)
    if mode is not None:
        name, value = _TAMPERED_CLAIMS[mode]
        claims[name] = value
    return jwt.encode(header, claims, provider_key)


def _json_field(name: str, allowed: Any) -> Any:
    """The field `name` of the JSON body, when `allowed(value)`; else a 400 answer is raised."""
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict) or name not in body or not allowed(body[name]):
        flask.abort(flask.make_response({"error": f"expected a JSON object with a valid {name!r}"}, 400))
    return body[name]


def create_app(token_max_age: int = 3600, *, id_token_kid: bool = True) -> flask.Flask:
    """The mock's app (nonce required) plus the test controls under /_control/.

    With `id_token_kid` every id_token carries the kid of the JWKS key in its header (the mock's own have none).
    """
    # Authlib lets a refresh grant authenticate with client_secret_basic only; accept what the code grant accepts.
    oidc_provider_mock_app.RefreshTokenGrant.TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    app = oidc_provider_mock.app(require_nonce=True, access_token_max_age=timedelta(seconds=token_max_age))
    controls = _Controls()

    def storage() -> Any:
        return flask.g.oidc_provider_mock_storage  # set by the mock's own before_request, which runs first

    @app.before_request
    def count_and_fail_token_requests() -> flask.Response | None:
        if flask.request.method != "POST" or flask.request.path != TOKEN_PATH:
            return None
        grant_type = flask.request.form.get("grant_type", "")
        with controls.lock:
            if grant_type in controls.counters:
                controls.counters[grant_type] += 1
            status = controls.failure_status
            challenge = controls.challenges.pop(flask.request.form.get("code", ""), None)
        if status is not None:
            answer = flask.make_response({"error": "temporarily_unavailable"}, status)
        elif challenge is not None and s256(flask.request.form.get("code_verifier", "")) != challenge:
            answer = flask.make_response({"error": "invalid_grant", "error_description": "PKCE check failed"}, 400)
        else:
            return None
        answer.headers["Cache-Control"] = "no-store"
        return answer

    @app.after_request
    def remember_code_challenges(response: flask.Response) -> flask.Response:
        """The mock does not check PKCE; this does, as Dex and Google do (S256)."""
        challenge = flask.request.args.get("code_challenge")
        if flask.request.path == "/oauth2/authorize" and response.status_code == 302 and challenge:
            code = parse_qs(urlsplit(response.headers.get("Location", "")).query).get("code")
            if code:
                with controls.lock:
                    controls.challenges[code[0]] = challenge
        return response

    @app.after_request
    def state_on_refusals(response: flask.Response) -> flask.Response:
        """The mock's Deny answers without `state`; RFC 6749 §4.1.2.1 (and Dex, and Google) send it back."""
        state = flask.request.args.get("state")
        location = response.headers.get("Location", "")
        if flask.request.path != "/oauth2/authorize" or response.status_code != 302 or not state:
            return response
        parts = urlsplit(location)
        query = parse_qs(parts.query)
        if "error" in query and "state" not in query:
            response.headers["Location"] = urlunsplit(parts._replace(query=urlencode({**query, "state": state}, True)))
        return response

    @app.after_request
    def remake_id_tokens(response: flask.Response) -> flask.Response:
        with controls.lock:
            mode = controls.tamper_mode
        if (mode is None and not id_token_kid) or flask.request.path != TOKEN_PATH or response.status_code != 200:
            return response
        body = response.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            return response
        provider_key = controls.provider_key(storage())
        body["id_token"] = remade_id_token(
            body["id_token"], mode, provider_key, controls.stranger_key(), kid=id_token_kid
        )
        response.set_data(json.dumps(body))
        return response

    @app.after_request
    def advertise_revocation(response: flask.Response) -> flask.Response:
        """The mock has no revocation endpoint; this one (RFC 7009) forgets refresh tokens."""
        body = response.get_json(silent=True) if flask.request.path == DISCOVERY_PATH else None
        if isinstance(body, dict):
            body["revocation_endpoint"] = flask.request.host_url.rstrip("/") + REVOKE_PATH
            response.set_data(json.dumps(body))
        return response

    @app.post(REVOKE_PATH)
    def revoke() -> tuple[str, int]:
        if not flask.request.authorization and "client_secret" not in flask.request.form:
            return "", 401
        storage().remove_refresh_token(flask.request.form.get("token", ""))
        with controls.lock:
            controls.revocations.append(flask.request.form.get("token_type_hint", ""))
        return "", 200

    @app.get("/_control/revocations")
    def get_revocations() -> tuple[dict[str, list[str]], int]:
        with controls.lock:
            return {"revocations": list(controls.revocations)}, 200

    @app.post("/_control/token-failure")
    def set_token_failure() -> tuple[dict[str, Any], int]:
        status = _json_field("status", lambda value: value is None or (type(value) is int and 400 <= value <= 599))
        with controls.lock:
            controls.failure_status = status
        return {"status": status}, 200

    @app.post("/_control/tamper")
    def set_tamper() -> tuple[dict[str, Any], int]:
        mode = _json_field("mode", lambda value: value is None or value in TAMPER_MODES)
        with controls.lock:
            controls.tamper_mode = mode
        return {"mode": mode}, 200

    @app.get("/_control/counters")
    def get_counters() -> tuple[dict[str, int], int]:
        with controls.lock:
            return dict(controls.counters), 200

    @app.post("/_control/counters/reset")
    def reset_counters() -> tuple[dict[str, int], int]:
        with controls.lock:
            controls.counters = dict.fromkeys(GRANT_TYPES, 0)
            controls.revocations = []
            return dict(controls.counters), 200

    @app.post("/_control/expire-refresh-tokens")
    def expire_refresh_tokens() -> tuple[dict[str, int], int]:
        forgotten = 0
        for token in storage().refresh_tokens():
            if storage().remove_refresh_token(token.token) is not None:
                forgotten += 1
        return {"expired": forgotten}, 200

    return app


def serve(port: int, token_max_age: int, *, id_token_kid: bool = True) -> None:
    """Serve the provider on 127.0.0.1:`port` with werkzeug's threaded server until SIGTERM or SIGINT."""
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # Authlib refuses plain http without it
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="oidc-provider %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = werkzeug.serving.make_server(
        "127.0.0.1", port, create_app(token_max_age, id_token_kid=id_token_kid), threaded=True
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-max-age", type=int, default=3600, help="access and id token lifetime, seconds")
    parser.add_argument("--no-kid", action="store_true", help="id_tokens without a kid, as the mock makes them")
    options = parser.parse_args(argv)
    serve(options.port, options.token_max_age, id_token_kid=not options.no_kid)


# --- the harness, for pytest ---


class OidcProvider:
    """A provider process on a free (or given) port; start()/stop(), or use it as a context manager."""

    def __init__(self, port: int | None = None, token_max_age: int = 3600, *, id_token_kid: bool = True) -> None:
        self.port = port or free_port()
        self.token_max_age = token_max_age
        self.id_token_kid = id_token_kid
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._http = httpx.Client(base_url=self.issuer, timeout=10.0, follow_redirects=False)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}{TOKEN_PATH}"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/userinfo"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tests.servers.oidc_provider",
            "--port",
            str(self.port),
            "--token-max-age",
            str(self.token_max_age),
            *([] if self.id_token_kid else ["--no-kid"]),
        ]

    def start(self) -> Self:
        """Spawn the process in its own group; return once discovery answers 200 (OidcProviderError after 20 s)."""
        if self._process is not None:
            raise OidcProviderError(f"the provider on {self.issuer} is already running")
        # The process's stderr, read when it fails to start; closed by stop().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = {**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1", "PYTHONUNBUFFERED": "1"}
        try:
            self._process = start_until_ready(
                self.command(),
                env=env,
                output=subprocess.DEVNULL,
                errors=self._stderr,
                ready=lambda: http_problem(f"{self.issuer}{DISCOVERY_PATH}", lambda answer: answer.status_code == 200),
                timeout=START_TIMEOUT_SECONDS,
                failure=lambda reason: OidcProviderError(
                    f"the provider on {self.issuer} {reason}:\n{self.stderr_text()}"
                ),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the provider's process group; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        """Stop the process and close the harness's HTTP client."""
        self.stop()
        self._http.close()

    def stderr_text(self) -> str:
        """What the provider process has written to stderr so far."""
        if self._stderr is None:
            return "(no stderr)"
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    # --- the mock's own API ---

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """Create or replace the user `sub` with these claims (PUT /users/<sub>)."""
        self._expect(self._http.put(f"/users/{quote(sub, safe='')}", json=claims), 204)

    def revoke_user_tokens(self, sub: str) -> None:
        """Forget the user's access and refresh tokens: a refresh with one then answers 400 invalid_grant."""
        self._expect(self._http.post(f"/users/{quote(sub, safe='')}/revoke-tokens"), 204)

    def sign_in(self, authorize_url: str, sub: str) -> str:
        """Sign `sub` in on the provider's authorize page at `authorize_url`; the Location it redirects to."""
        return self._decide(authorize_url, {"sub": sub})

    def deny(self, authorize_url: str) -> str:
        """Deny on the provider's authorize page; the Location it redirects to (error=access_denied)."""
        return self._decide(authorize_url, {"action": "deny"})

    def _decide(self, authorize_url: str, form: dict[str, str]) -> str:
        parts = urlsplit(authorize_url)
        if f"{parts.scheme}://{parts.netloc}" != self.issuer or parts.path != "/oauth2/authorize":
            raise OidcProviderError(f"{authorize_url} is not this provider's authorize endpoint ({self.issuer})")
        answer = self._http.post(authorize_url, data=form)
        if answer.status_code != 302:
            raise OidcProviderError(f"authorize answered {answer.status_code}, not 302: {answer.text[:500]}")
        return answer.headers["location"]

    # --- the test controls ---

    def token_failure(self, status: int | None) -> None:
        """Every later token request answers `status` with {"error": "temporarily_unavailable"}; None: off."""
        self._expect(self._http.post("/_control/token-failure", json={"status": status}), 200)

    def tamper(self, mode: str | None) -> None:
        """Every later id_token is re-made as `mode` (one of TAMPER_MODES) asks; None: off."""
        self._expect(self._http.post("/_control/tamper", json={"mode": mode}), 200)

    def counters(self) -> dict[str, int]:
        """Token requests received per grant_type ("authorization_code", "refresh_token")."""
        answer = self._expect(self._http.get("/_control/counters"), 200)
        return {name: int(count) for name, count in answer.json().items()}

    def revocations(self) -> list[str]:
        """The token_type_hint of every revocation request received since the counters were reset."""
        answer = self._expect(self._http.get("/_control/revocations"), 200)
        return list(answer.json()["revocations"])

    def reset_counters(self) -> None:
        self._expect(self._http.post("/_control/counters/reset"), 200)

    def expire_refresh_tokens(self) -> None:
        """Forget every refresh token of every user: any refresh then answers 400 invalid_grant."""
        self._expect(self._http.post("/_control/expire-refresh-tokens"), 200)

    def reset(self) -> None:
        """Token failure and tampering off, counters zero."""
        self.token_failure(None)
        self.tamper(None)
        self.reset_counters()

    @staticmethod
    def _expect(answer: httpx.Response, status: int) -> httpx.Response:
        if answer.status_code != status:
            raise OidcProviderError(
                f"{answer.request.method} {answer.request.url} answered {answer.status_code}: {answer.text[:500]}"
            )
        return answer


if __name__ == "__main__":
    main()
