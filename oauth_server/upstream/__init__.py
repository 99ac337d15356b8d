"""Upstream identity: users sign in at Dex, Google or any OIDC issuer; their tokens follow each token family."""
