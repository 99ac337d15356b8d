"""The OAuth extensions, one module each: PKCE, resource indicators, state, issuer identification, refresh grace."""
