"""The Tryton connector against a real trytond: a customer invoice paid by the pay wizard → a read-only
payment (invoice, party, date, amount, reference), listed once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from accord.connectors.base import WriteOp
from accord.connectors.errors import Permanent
from accord.connectors.tryton.client import TrytonConnector
from accord.connectors.tryton.mapping import TrytonMapper
from accord.sandboxes.tryton.bootstrap import Rpc
from tests.tryton.test_billing import drain, make, pay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # the first test may build the template
DAY = dt.date.today()


async def test_payments_of_a_customer_invoice_are_read_and_never_written(
        connector: TrytonConnector, rpc: Rpc, tryton_template: tuple[Path, dict[str, Any]]) -> None:
    customer = make(rpc, "party.party", name="Initech", addresses=[["create", [{"street": "2 Side St"}]]])
    project = make(rpc, "project.work", name="Initech audit", type="project", party=customer,
                   timesheet_available=True, project_invoice_method="timesheet",
                   product=tryton_template[1]["product"], list_price=Decimal("100"))
    emp = make(rpc, "company.employee", party=make(rpc, "party.party", name="Pat Auditor"),
               company=rpc.context["company"])
    twork = rpc.call("model.project.work.read", [project], ["timesheet_works"])[0]["timesheet_works"][0]
    make(rpc, "timesheet.line", employee=emp, work=twork, date=DAY, duration=dt.timedelta(hours=3))
    rpc.call("model.project.work.invoice", [project])
    invoice, = rpc.call("model.account.invoice.search", [["party", "=", customer]], 0, None, None)
    rpc.call("model.account.invoice.post", [invoice])
    _, cursor = await drain(connector, "payment", None)
    first, cursor = await drain(connector, "payment", cursor)  # nothing paid yet
    assert first == []
    pay(rpc, invoice, Decimal("300"))
    paid, cursor = await drain(connector, "payment", cursor)
    assert [(r.gid, r.fields) for r in paid] == [(None, {
        "invoice": str(invoice), "account": str(customer), "paid_date": DAY.isoformat(), "amount": "300",
        "currency": "EUR", "reference": "paid"})]
    assert (await drain(connector, "payment", cursor))[0] == []
    assert await connector.scan_ids("payment") == {paid[0].id}
    state, = rpc.call("model.account.invoice.read", [invoice], ["state"])
    assert state["state"] == "paid"

    refused, = await connector.write("payment", [WriteOp(gid="g-p", kind="upsert", key="k", target_id=paid[0].id,
                                                         fields={"amount": "1"})])
    assert not refused.ok and isinstance(refused.error, Permanent) and refused.error.code == "read_only"
    with pytest.raises(Permanent, match="read only"):
        TrytonMapper().to_wire("payment", {"amount": "1"})
