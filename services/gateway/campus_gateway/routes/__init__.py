"""The public API, one module per area; every router is rate limited."""
