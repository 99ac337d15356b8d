"""Shared infrastructure: configuration, shared cache, locks, rate limits, audit, metrics, client IP, errors.

It imports neither the authorization server (`oauth_server`) nor the resource server (`mcp_gateway`).
"""
