"""The client IP behind trusted proxies, and the rate-limit bucket an address falls in."""

import dataclasses

import pytest
from django.test import RequestFactory

from infra.client_ip import asgi_client_ip, bucket_key, client_ip, django_client_ip

PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored():
    assert client_ip("203.0.113.7", "198.51.100.1", PROXIES) == "203.0.113.7"


def test_without_trusted_proxies_x_forwarded_for_is_ignored_even_from_a_private_peer():
    assert client_ip("10.0.0.2", "198.51.100.1", ()) == "10.0.0.2"


def test_the_right_most_untrusted_hop_is_the_client_behind_a_chain_of_trusted_proxies():
    # The client forged the first entry; each trusted proxy appended the address it saw.
    forwarded = "192.0.2.66, 198.51.100.9, 10.1.1.1, 10.2.2.2"

    assert client_ip("10.3.3.3", forwarded, PROXIES) == "198.51.100.9"


def test_a_chain_of_only_trusted_hops_gives_the_left_most():
    assert client_ip("10.3.3.3", "10.0.0.5, 10.0.0.6", PROXIES) == "10.0.0.5"


def test_a_trusted_peer_without_x_forwarded_for_is_the_client():
    assert client_ip("10.3.3.3", None, PROXIES) == "10.3.3.3"
    assert client_ip("10.3.3.3", " , ", PROXIES) == "10.3.3.3"


def test_malformed_entries_are_skipped():
    forwarded = "198.51.100.9, unknown, 300.1.1.1, _hidden, [2001:db8::1, 1.2.3.4:http, 10.1.1.1"

    assert client_ip("10.3.3.3", forwarded, PROXIES) == "198.51.100.9"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("  198.51.100.9  ", "198.51.100.9"),
        ("198.51.100.9:5678", "198.51.100.9"),
        ("2001:db8:1::7", "2001:db8:1::7"),
        ("[2001:db8:1::7]:443", "2001:db8:1::7"),
        ("[2001:db8:1::7]", "2001:db8:1::7"),
        ("2001:DB8:1:0:0:0:0:7", "2001:db8:1::7"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
    ],
)
def test_spaces_ports_brackets_and_ipv6_forms_are_understood(entry, expected):
    assert client_ip("10.3.3.3", f"{entry}, 10.1.1.1", PROXIES) == expected


def test_an_ipv6_proxy_in_a_trusted_network_is_skipped():
    assert client_ip("2001:db8:ffff::1", "2001:db8:1::7, 2001:db8:ffff::2", PROXIES) == "2001:db8:1::7"


def test_a_v4_mapped_peer_is_matched_against_ipv4_networks():
    assert client_ip("::ffff:10.3.3.3", "198.51.100.9", PROXIES) == "198.51.100.9"


def test_an_unparseable_peer_address_is_returned_as_it_is_and_not_trusted():
    assert client_ip("", "198.51.100.9", PROXIES) == ""
    assert client_ip("unix:/run/muster.sock", "198.51.100.9", PROXIES) == "unix:/run/muster.sock"


def test_ipv6_addresses_share_a_bucket_per_64():
    assert bucket_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert bucket_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert bucket_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"


def test_ipv4_addresses_are_their_own_bucket():
    assert bucket_key("198.51.100.9") == "198.51.100.9"
    assert bucket_key("198.51.100.10") == "198.51.100.10"


def test_ipv4_mapped_ipv6_is_bucketed_as_the_ipv4_address():
    assert bucket_key("::ffff:198.51.100.9") == "198.51.100.9"


def test_an_unparseable_address_is_its_own_bucket():
    assert bucket_key("") == ""
    assert bucket_key("not-an-ip") == "not-an-ip"


def _trusting(settings, cidrs: tuple[str, ...]) -> None:
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, trusted_proxy_cidrs=cidrs)


def test_a_django_request_believes_x_forwarded_for_only_from_configured_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.3.3.3", HTTP_X_FORWARDED_FOR="198.51.100.9, 10.1.1.1")

    assert django_client_ip(request) == "10.3.3.3"
    _trusting(settings, PROXIES)
    assert django_client_ip(request) == "198.51.100.9"


def test_an_asgi_scope_joins_repeated_x_forwarded_for_headers_in_order(settings):
    _trusting(settings, PROXIES)
    scope = {
        "type": "http",
        "client": ("10.3.3.3", 40000),
        "headers": [(b"x-forwarded-for", b"192.0.2.66, 198.51.100.9"), (b"X-Forwarded-For", b"10.1.1.1")],
    }

    assert asgi_client_ip(scope) == "198.51.100.9"


def test_an_asgi_scope_from_an_untrusted_peer_ignores_x_forwarded_for(settings):
    _trusting(settings, PROXIES)
    scope = {"type": "http", "client": ("203.0.113.7", 40000), "headers": [(b"x-forwarded-for", b"198.51.100.9")]}

    assert asgi_client_ip(scope) == "203.0.113.7"


def test_an_asgi_scope_without_a_peer_address_gives_an_empty_address(settings):
    _trusting(settings, PROXIES)

    assert asgi_client_ip({"type": "http", "client": None, "headers": [(b"x-forwarded-for", b"1.2.3.4")]}) == ""
