"""The security audit log: the events a flow and an attack produce, and that no line ever carries a secret."""

import json

import pytest

from infra import audit
from tests.support.authorize import authorize_url
from tests.support.flow import basic, exchange, issue_code, refresh
from tests.support.pkce import pkce_pair
from tests.support.tokens import grace_passed


def read(caplog) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "muster.audit"]


@pytest.mark.django_db
def test_a_flow_and_a_reuse_attack_are_audited_without_any_secret(client, user, confidential_client, caplog, audit_log):
    app, secret = confidential_client
    client.force_login(user)

    code, verifier, _ = issue_code(client, app.client_id)
    first = exchange(client, app.client_id, code, verifier, client_secret=secret).json()
    second = refresh(
        client, app.client_id, first["refresh_token"], headers={"Authorization": basic(app.client_id, secret)}
    )
    exchange(client, app.client_id, code, verifier, client_secret=secret)  # the code, replayed
    grace_passed(first["refresh_token"])
    refresh(client, app.client_id, first["refresh_token"], client_secret=secret)  # a stolen, rotated token

    lines = read(caplog)
    events = [line["event"] for line in lines]
    for expected in (
        "authorization_started",
        "code_issued",
        "token_issued",
        "token_refreshed",
        "code_reuse_detected",
        "refresh_token_reuse_detected",
        "family_revoked",
    ):
        assert expected in events, events
    assert {line["reason"] for line in lines if line["event"] == "family_revoked"} >= {"authorization-code-reuse"}
    everything = "\n".join(record.getMessage() for record in caplog.records)
    for secret_value in (
        first["access_token"],
        first["refresh_token"],
        second.json()["access_token"],
        second.json()["refresh_token"],
        code,
        verifier,
        secret,
        user.username,
        app.client_id,
    ):
        assert secret_value not in everything
    issued = next(line for line in lines if line["event"] == "token_issued")
    assert issued["user"] == audit.hashed(user.pk)
    assert issued["client"] == audit.hashed(app.client_id)
    assert issued["request_id"] and issued["ip"] == audit.hashed("127.0.0.1")
    assert set(issued) >= {"time", "event", "outcome", "user", "client", "ip", "request_id"}


@pytest.mark.django_db
def test_pkce_and_resource_failures_are_audited(client, user, public_client, caplog, audit_log):
    client.force_login(user)
    client.get(authorize_url(public_client.client_id, pkce_pair()[1], code_challenge_method="plain"))
    client.get(authorize_url(public_client.client_id, pkce_pair()[1], resource="https://other.example/mcp"))
    code, _, _ = issue_code(client, public_client.client_id)
    exchange(client, public_client.client_id, code, "w" * 50)

    failures = {(line["event"], line.get("stage")) for line in read(caplog) if line["outcome"] == "failure"}

    assert {("pkce_failure", "authorize"), ("resource_mismatch", "authorize"), ("pkce_failure", "token")} <= failures


@pytest.mark.django_db
def test_revocations_are_audited_with_their_reason(client, user, public_client, caplog, audit_log):
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    tokens = exchange(client, public_client.client_id, code, verifier).json()

    client.post("/oauth/revoke", {"token": tokens["refresh_token"], "client_id": public_client.client_id})

    lines = read(caplog)
    assert any(line["event"] == "token_revoked" for line in lines)
    assert any(line["event"] == "family_revoked" and line["reason"] == "revocation-endpoint" for line in lines)


@pytest.mark.django_db
def test_repeated_security_events_are_throttled_but_still_counted(caplog, audit_log, monkeypatch):
    counted = []
    monkeypatch.setattr(audit.metrics, "observe_event", lambda event, outcome: counted.append(event))

    for _ in range(20):
        audit.record("token_validation_failed", "failure", user_id=1, client_id="c")

    written = [line for line in read(caplog) if line["event"] == "token_validation_failed"]
    assert 1 <= len(written) <= 6  # burst 5, 1 per second
    assert len(counted) == 20


def test_hashed_identifiers_are_stable_and_short():
    assert audit.hashed(42) == audit.hashed("42")
    assert len(audit.hashed("someone@example.com")) == 16
    assert audit.hashed(None) is None


@pytest.mark.django_db
def test_replays_on_a_family_already_revoked_are_audited_but_revoke_nothing_again(
    client, user, public_client, caplog, audit_log
):
    client.force_login(user)
    code, verifier, _ = issue_code(client, public_client.client_id)
    first = exchange(client, public_client.client_id, code, verifier).json()
    refresh(client, public_client.client_id, first["refresh_token"])
    grace_passed(first["refresh_token"])

    for _ in range(3):  # the first replay revokes the family; the next two find it revoked
        assert refresh(client, public_client.client_id, first["refresh_token"]).status_code == 400

    events = [line["event"] for line in read(caplog)]
    assert events.count("refresh_token_reuse_detected") == 3
    assert events.count("family_revoked") == 1
