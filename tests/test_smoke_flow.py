import pytest

from tests.flow import exchange, issue_code, refresh


@pytest.mark.django_db
def test_public_client_completes_code_flow_and_refreshes(client, user, public_client):
    client.force_login(user)
    code, verifier, query = issue_code(client, public_client.client_id)
    assert query["iss"] == ["http://127.0.0.1:8000"]
    tokens = exchange(client, public_client.client_id, code, verifier)
    assert tokens.status_code == 200, tokens.content
    body = tokens.json()
    assert body["expires_in"] == 1800
    again = refresh(client, public_client.client_id, body["refresh_token"])
    assert again.status_code == 200, again.content
    replay = refresh(client, public_client.client_id, body["refresh_token"])
    assert replay.json() == again.json()
