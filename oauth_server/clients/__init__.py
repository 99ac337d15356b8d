"""OAuth clients: registration policy (RFC 7591), metadata documents (CIMD), redirect URIs, auth, lifecycle."""
