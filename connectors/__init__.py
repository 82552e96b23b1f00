"""Connectors: one sub-package per external system (client, wire mapping, sandbox)."""
