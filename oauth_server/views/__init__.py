"""HTTP views of the authorization server, one module per endpoint family."""
