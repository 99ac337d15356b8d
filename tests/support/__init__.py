"""Helpers the test modules share: PKCE, authorization requests, the one OAuth flow driver, caches, services."""
