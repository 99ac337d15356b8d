"""The admin: token families as rows an operator can filter, search and revoke, and the clients list."""

import secrets
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken, set_token_value

from oauth_server.families import revoke_family
from oauth_server.models import TokenFamily
from tests.support.authorize import REDIRECT_URI
from tests.support.flow import exchange, issue_code, refresh, sign_in
from tests.support.tokens import checksum, family_of

FAMILIES_URL = "/admin/oauth_server/tokenfamily/"
CLIENTS_URL = "/admin/oauth2_provider/application/"


def access_token_exists(tokens: dict[str, str]) -> bool:
    return AccessToken.objects.filter(token_checksum=checksum(tokens["access_token"])).exists()


def shown_families(response) -> dict[uuid.UUID, TokenFamily]:
    assert response.status_code == 200, response.content
    return {row.token_family: row for row in response.context["cl"].result_list}


def make_family(user, application: Application, generations: int = 1) -> uuid.UUID:
    """A family written straight to the database: older generations revoked, the newest live."""
    family = uuid.uuid4()
    now = timezone.now()
    for generation in range(generations):
        newest = generation == generations - 1
        access = None
        if newest:
            access = AccessToken(user=user, application=application, expires=now + timedelta(hours=1))
            set_token_value(access, secrets.token_urlsafe(32))
            access.save()
        token = RefreshToken(
            user=user,
            application=application,
            access_token=access,
            token_family=family,
            revoked=None if newest else now,
        )
        set_token_value(token, secrets.token_urlsafe(32))
        token.save()
    return family


@pytest.fixture
def other_client(db) -> Application:
    return Application.objects.create(
        name="Other client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
    )


# --- the families changelist ---


@pytest.mark.django_db
def test_families_page_shows_one_row_per_family_with_generations_and_state(admin_client, user, public_client):
    # Given a family refreshed twice (three generations) and a one-generation family that was revoked
    rotated = family_of(sign_in(user, public_client.client_id, refreshes=2))
    revoked = family_of(sign_in(user, public_client.client_id))
    revoke_family(revoked, reason="test")

    # When the operator opens the families page
    response = admin_client.get(FAMILIES_URL)

    # Then there is one row per family, not one per refresh token
    rows = shown_families(response)
    assert set(rows) == {rotated, revoked}
    assert RefreshToken.objects.count() == 4
    assert rows[rotated].generations == 3
    assert rows[rotated].live_members == 1
    assert rows[revoked].generations == 1
    assert rows[revoked].live_members == 0
    page = response.content.decode()
    assert str(rotated) in page and str(revoked) in page
    assert page.count('alt="True"') == 1 and page.count('alt="False"') == 1


@pytest.mark.django_db
def test_family_changelist_filters_active_families(admin_client, user, public_client):
    active = family_of(sign_in(user, public_client.client_id, refreshes=1))
    revoked = family_of(sign_in(user, public_client.client_id))
    revoke_family(revoked, reason="test")

    rows = shown_families(admin_client.get(FAMILIES_URL, {"status": "active"}))

    assert set(rows) == {active}


@pytest.mark.django_db
def test_family_changelist_filters_revoked_families(admin_client, user, public_client):
    family_of(sign_in(user, public_client.client_id, refreshes=1))
    revoked = family_of(sign_in(user, public_client.client_id, refreshes=1))
    revoke_family(revoked, reason="test")

    rows = shown_families(admin_client.get(FAMILIES_URL, {"status": "revoked"}))

    assert set(rows) == {revoked}


@pytest.mark.django_db
def test_family_changelist_filters_by_client(admin_client, user, public_client, other_client):
    family_of(sign_in(user, public_client.client_id))
    theirs = family_of(sign_in(user, other_client.client_id))

    rows = shown_families(admin_client.get(FAMILIES_URL, {"application__id__exact": other_client.pk}))

    assert set(rows) == {theirs}


@pytest.mark.django_db
def test_family_changelist_filters_by_user(admin_client, user, bob, public_client):
    family_of(sign_in(user, public_client.client_id))
    bobs = family_of(sign_in(bob, public_client.client_id, refreshes=1))

    rows = shown_families(admin_client.get(FAMILIES_URL, {"user__id__exact": bob.pk}))

    assert set(rows) == {bobs}


@pytest.mark.django_db
def test_family_changelist_finds_a_family_by_its_id(admin_client, user, public_client):
    wanted = family_of(sign_in(user, public_client.client_id, refreshes=1))
    family_of(sign_in(user, public_client.client_id))

    rows = shown_families(admin_client.get(FAMILIES_URL, {"q": str(wanted)}))

    assert set(rows) == {wanted}
    assert rows[wanted].generations == 2


@pytest.mark.django_db
def test_family_changelist_search_by_username_works_alongside_the_exact_id_field(
    admin_client, user, bob, public_client
):
    family_of(sign_in(user, public_client.client_id))
    bobs = family_of(sign_in(bob, public_client.client_id))

    rows = shown_families(admin_client.get(FAMILIES_URL, {"q": "bob"}))

    assert set(rows) == {bobs}


@pytest.mark.django_db
def test_family_changelist_costs_the_same_queries_for_3_families_as_for_60(admin_client, django_user_model):
    users = [django_user_model.objects.create_user(username=f"user{n}") for n in range(3)]
    clients = [
        Application.objects.create(
            name=f"Client {n}",
            client_type=Application.CLIENT_PUBLIC,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=REDIRECT_URI,
        )
        for n in range(3)
    ]
    for n in range(3):
        make_family(users[n], clients[n], generations=n + 1)
    admin_client.get(FAMILIES_URL)  # warm the session and content-type caches

    with CaptureQueriesContext(connection) as few:
        few_page = admin_client.get(FAMILIES_URL)
    for n in range(3, 60):
        make_family(users[n % 3], clients[n % 3], generations=n % 4 + 1)
    with CaptureQueriesContext(connection) as many:
        many_page = admin_client.get(FAMILIES_URL)

    assert len(shown_families(few_page)) == 3
    assert len(shown_families(many_page)) == 60
    assert len(many) == len(few), "\n".join(q["sql"] for q in many.captured_queries)


# --- the revoke action ---


@pytest.mark.django_db
def test_revoking_a_family_in_the_admin_stops_its_access_and_refresh_token(admin_client, user, public_client):
    # Given a sign-in refreshed once
    doomed_tokens = sign_in(user, public_client.client_id, refreshes=1)
    doomed = family_of(doomed_tokens)
    head = TokenFamily.objects.heads().get(token_family=doomed)

    # When the operator selects it and runs "revoke"
    response = admin_client.post(FAMILIES_URL, {"action": "revoke_families", "_selected_action": [head.pk]})

    # Then every refresh token of that family is revoked and its access token is gone
    assert response.status_code == 302
    assert not RefreshToken.objects.filter(token_family=doomed, revoked__isnull=True).exists()
    assert not access_token_exists(doomed_tokens)
    assert not AccessToken.objects.filter(refresh_token__token_family=doomed).exists()
    # and its refresh token no longer refreshes
    answer = refresh(Client(), public_client.client_id, doomed_tokens["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_revoking_a_family_in_the_admin_leaves_unselected_families_working(admin_client, user, public_client):
    doomed_tokens = sign_in(user, public_client.client_id, refreshes=1)
    kept_tokens = sign_in(user, public_client.client_id, refreshes=1)
    kept = family_of(kept_tokens)
    head = TokenFamily.objects.heads().get(token_family=family_of(doomed_tokens))

    admin_client.post(FAMILIES_URL, {"action": "revoke_families", "_selected_action": [head.pk]})

    assert RefreshToken.objects.filter(token_family=kept, revoked__isnull=True).count() == 1
    assert access_token_exists(kept_tokens)
    answer = refresh(Client(), public_client.client_id, kept_tokens["refresh_token"])
    assert answer.status_code == 200, answer.content
    assert family_of(answer.json()) == kept


@pytest.mark.django_db
def test_a_family_revoked_in_the_admin_is_not_revived_by_the_refresh_grace(admin_client, user, public_client):
    # Given a refresh token rotated a moment ago (still inside the 60 s race grace)
    browser = Client()
    browser.force_login(user)
    code, verifier, _ = issue_code(browser, public_client.client_id)
    first = exchange(browser, public_client.client_id, code, verifier).json()
    rotated = refresh(browser, public_client.client_id, first["refresh_token"])
    assert rotated.status_code == 200, rotated.content
    head = TokenFamily.objects.heads().get(token_family=family_of(first))

    # When the operator revokes the family
    admin_client.post(FAMILIES_URL, {"action": "revoke_families", "_selected_action": [head.pk]})

    # Then presenting the rotated token again does not hand back the revoked pair
    answer = refresh(browser, public_client.client_id, first["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_revoking_several_families_in_the_admin_reports_how_many(admin_client, user, public_client):
    families = [family_of(sign_in(user, public_client.client_id, refreshes=n)) for n in range(3)]
    selected = [TokenFamily.objects.heads().get(token_family=f).pk for f in families[:2]]

    action = {"action": "revoke_families", "_selected_action": selected}

    response = admin_client.post(FAMILIES_URL, action, follow=True)

    assert "Revoked 2 token families." in [str(m) for m in response.context["messages"]]
    live = set(RefreshToken.objects.filter(revoked__isnull=True).values_list("token_family", flat=True))
    assert live == {families[2]}


# --- who may see it ---


@pytest.mark.django_db
def test_staff_without_permissions_gets_403_on_families_page(client, django_user_model, user, public_client):
    family_of(sign_in(user, public_client.client_id))
    staff = django_user_model.objects.create_user(username="helper", password="x", is_staff=True)
    client.force_login(staff)

    response = client.get(FAMILIES_URL)

    assert response.status_code == 403


@pytest.mark.django_db
def test_staff_without_permissions_cannot_revoke_a_family(client, django_user_model, user, public_client):
    tokens = sign_in(user, public_client.client_id)
    family = family_of(tokens)
    head = TokenFamily.objects.heads().get(token_family=family)
    staff = django_user_model.objects.create_user(username="helper", password="x", is_staff=True)
    client.force_login(staff)

    response = client.post(FAMILIES_URL, {"action": "revoke_families", "_selected_action": [head.pk]})

    assert response.status_code == 403
    assert RefreshToken.objects.filter(token_family=family, revoked__isnull=True).count() == 1
    assert access_token_exists(tokens)


@pytest.mark.django_db
def test_staff_who_may_only_view_families_cannot_revoke_one(client, django_user_model, user, public_client):
    from django.contrib.auth.models import Permission

    tokens = sign_in(user, public_client.client_id)
    family = family_of(tokens)
    head = TokenFamily.objects.heads().get(token_family=family)
    viewer = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_tokenfamily"))
    client.force_login(viewer)
    page = client.get(FAMILIES_URL)
    assert page.status_code == 200
    assert b"revoke_families" not in page.content

    client.post(FAMILIES_URL, {"action": "revoke_families", "_selected_action": [head.pk]})

    assert RefreshToken.objects.filter(token_family=family, revoked__isnull=True).count() == 1
    assert access_token_exists(tokens)


# --- the clients changelist ---


@pytest.mark.django_db
def test_clients_changelist_lists_name_id_type_registration_source_and_redirect_uris(
    admin_client, public_client, confidential_client
):
    registered = Application.objects.create(
        name="Registered client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://app.example.com/cb",
        registration_source=Application.RegistrationSource.DCR,
    )

    response = admin_client.get(CLIENTS_URL)

    assert response.status_code == 200
    cl = response.context["cl"]
    columns = {"name", "client_id", "client_type", "registration_source", "redirect_uris"}
    assert columns <= set(cl.list_display)
    assert {app.pk for app in cl.result_list} == {public_client.pk, confidential_client[0].pk, registered.pk}
    page = response.content.decode()
    for app in (public_client, confidential_client[0], registered):
        assert app.name in page
        assert app.client_id in page
    assert "Public" in page and "Confidential" in page
    assert "Manual" in page and "Dynamic Client Registration" in page
    assert REDIRECT_URI in page and "https://app.example.com/cb" in page


@pytest.mark.django_db
def test_clients_changelist_never_shows_a_client_secret(admin_client, confidential_client):
    client, secret = confidential_client

    response = admin_client.get(CLIENTS_URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert secret not in page
    assert Application.objects.get(pk=client.pk).client_secret not in page


@pytest.mark.django_db
def test_disabling_a_client_stops_its_tokens_and_new_authorizations(admin_client, client, user, public_client):
    tokens = sign_in(user, public_client.client_id)

    response = admin_client.post(
        CLIENTS_URL, {"action": "disable_clients", "_selected_action": [public_client.pk]}, follow=True
    )

    assert response.status_code == 200
    assert not AccessToken.objects.filter(application=public_client).exists()
    assert refresh(Client(), public_client.client_id, tokens["refresh_token"]).status_code in (400, 401)
    client.force_login(user)
    from tests.support.authorize import authorize_url
    from tests.support.pkce import pkce_pair

    refused = client.get(authorize_url(public_client.client_id, pkce_pair()[1]))
    assert refused.status_code == 400
    assert "Location" not in refused


@pytest.mark.django_db
def test_deleting_a_client_removes_it_and_its_tokens(admin_client, user, public_client):
    sign_in(user, public_client.client_id)

    admin_client.post(CLIENTS_URL, {"action": "delete_clients", "_selected_action": [public_client.pk]}, follow=True)

    assert not Application.objects.filter(pk=public_client.pk).exists()
    assert not AccessToken.objects.exists()
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


@pytest.mark.django_db
def test_the_clients_page_shows_gate_and_last_use(admin_client, user):
    from io import StringIO

    from django.core.management import call_command

    call_command(
        "createclient", "--name", "Gatekeeper", "--redirect-uri", "http://127.0.0.1/callback", stdout=StringIO()
    )
    created = Application.objects.get(name="Gatekeeper")
    sign_in(user, created.client_id)

    page = admin_client.get(CLIENTS_URL).content.decode()

    assert "operator (admin or manage.py)" in page
    assert created.muster_registration.last_used is not None
