"""Tryton's value encoding, error classification and settings checks (no server)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from accord.connectors.errors import AuthExpired, Gone, Permanent, Retryable, StaleVersion
from accord.connectors.tryton.codec import dumps, epoch_us, from_epoch_us, loads
from accord.connectors.tryton.session import rpc_error
from accord.connectors.tryton.settings import TrytonSettings


def test_values_travel_as_tryton_classes_and_back() -> None:
    values = [Decimal("120.00"), dt.date(2026, 11, 24), dt.timedelta(seconds=9000), b"\x00x",
              dt.datetime(2026, 11, 24, 16, 53, 51, 532734, tzinfo=dt.UTC)]
    wire = loads(dumps(values))
    assert wire == values and str(wire[0]) == "120.00"
    assert b'"__class__":"Decimal","decimal":"120.00"' in dumps(values)
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    assert from_epoch_us(epoch_us(stamp)) == stamp.replace(tzinfo=None)


@pytest.mark.parametrize(("error", "kind", "code"), [
    (["ConcurrencyException", "Records were modified in the meanwhile"], Retryable, "concurrency"),
    (["UserError", ["The code on party must be unique.", "", None]], Retryable, "sequence_clash"),
    (["UserError", ['You are trying to read records "4" of "Party" that don\'t exist.', "", None]], Gone,
     "not_found"),
    (["UserError", ['A value is required for field "Name" in record "3" of "Project Work".', "", None]],
     Permanent, "user_error"),
    (["UserWarning", ["w1", "Are you sure?", ""]], Permanent, "user_warning"),
    (["LoginException", ["password", "Password for admin", "password"]], AuthExpired, "login"),
    (["'no_such_field'", ""], Permanent, "server_error"),
])
def test_tryton_errors_are_classified_by_what_the_caller_does_next(error: object, kind: type, code: str) -> None:
    exc = rpc_error("erp", "model.party.party.write", error)
    assert isinstance(exc, kind) and exc.code == code
    assert isinstance(exc, StaleVersion) == (code == "concurrency")
    if kind is Permanent:
        assert not isinstance(exc, Retryable)


def test_settings_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="must not end in /rpc"):
        TrytonSettings(base_url="http://h:8000/rpc", database="d", login="a", password="p")
    with pytest.raises(ValueError, match="database name"):
        TrytonSettings(base_url="http://h:8000", database="a/b", login="a", password="p")
