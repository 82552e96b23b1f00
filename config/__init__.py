"""Typed configuration: TOML decoded into frozen msgspec Structs (``accord.config.settings``)."""
