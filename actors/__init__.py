"""Actors: poller, writer, supervisor helpers; plain async classes, Ray options in remote.py."""
