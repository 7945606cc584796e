"""Watchlists: saved queries that alert once per new matching article (pipeline/watch/)."""
