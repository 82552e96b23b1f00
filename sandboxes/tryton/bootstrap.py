"""The one-time company set-up baked into the Tryton template (``reference/tryton.md`` §3.5), over plain
JSON-RPC: currency, company, chart of accounts, a fiscal year with strict sequences for this year, and a
service product invoiced per hour.

Runs once per template build; what it creates lives in the template file (nothing else survives).
"""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from typing import Any

import httpx

from accord.connectors.tryton.codec import dumps, loads

MODULES = ("party", "company", "currency", "account", "account_invoice", "project", "timesheet",
           "project_invoice", "project_revenue", "sale_opportunity")
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "admin-pass-123"  # a local test server's admin; never a real credential


class Rpc:
    """A minimal synchronous JSON-RPC client for the set-up (the connector has its own async one)."""

    def __init__(self, url: str, db: str) -> None:
        self.endpoint = f"{url}/{db}/rpc/"
        self.http = httpx.Client(timeout=120)
        self.headers = {"Content-Type": "application/json"}
        self.context: dict[str, Any] = {}
        self.uid = 0

    def post(self, method: str, params: list[Any]) -> Any:
        answer = self.http.post(self.endpoint, headers=self.headers,
                                content=dumps({"id": 1, "method": method, "params": params}))
        answer.raise_for_status()
        body = loads(answer.content)
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def login(self, login: str, password: str) -> None:
        self.uid, token, _ = self.post("common.db.login", [login, {"password": password}, "en"])
        auth = base64.b64encode(f"{login}:{self.uid}:{token}".encode()).decode()
        self.headers["Authorization"] = f"Session {auth}"
        self.context = self.post("model.res.user.get_preferences", [True, {}])

    def call(self, method: str, *args: Any) -> Any:
        return self.post(method, [*args, self.context])

    def one(self, model: str, domain: list[Any]) -> int:
        found: list[int] = self.call(f"model.{model}.search", domain, 0, 1, None)
        if not found:
            raise RuntimeError(f"no {model} matches {domain}")
        return found[0]


def _chart(t: Rpc, company: int) -> None:
    tmpl = t.one("account.account.template", [["parent", "=", None], ["name", "=", "Universal Chart of Accounts"]])
    sid, _, _ = t.call("wizard.account.create_chart.create")
    t.call("wizard.account.create_chart.execute", sid, {}, "start")
    t.call("wizard.account.create_chart.execute", sid, {"account": {"company": company, "account_template": tmpl}},
           "create_account")
    rec = t.one("account.account", [["type.receivable", "=", True], ["party_required", "=", True]])
    pay = t.one("account.account", [["type.payable", "=", True], ["party_required", "=", True]])
    t.call("wizard.account.create_chart.execute", sid, {"properties": {
        "company": company, "account_receivable": rec, "account_payable": pay,
        "category_account_revenue": None, "category_account_expense": None}}, "create_properties")
    t.call("wizard.account.create_chart.delete", sid)


def _fiscal_year(t: Rpc, company: int, year: int) -> int:
    st_move = t.one("ir.sequence.type", [["name", "=", "Account Move"]])
    st_inv = t.one("ir.sequence.type", [["name", "=", "Invoice"]])
    mseq, = t.call("model.ir.sequence.strict.create", [{"name": f"Moves {year}", "sequence_type": st_move,
                                                        "company": company}])
    iseq, = t.call("model.ir.sequence.strict.create", [{"name": f"Invoices {year}", "sequence_type": st_inv,
                                                        "company": company, "prefix": f"INV{year}-",
                                                        "padding": 4}])
    seqs = {"company": company, "out_invoice_sequence": iseq, "out_credit_note_sequence": iseq,
            "in_invoice_sequence": iseq, "in_credit_note_sequence": iseq}
    fy, = t.call("model.account.fiscalyear.create", [{
        "name": str(year), "start_date": dt.date(year, 1, 1), "end_date": dt.date(year, 12, 31),
        "company": company, "move_sequence": mseq, "invoice_sequences": [["create", [seqs]]]}])
    t.call("model.account.fiscalyear.create_period", [fy])
    return int(fy)


def _product(t: Rpc) -> tuple[int, int]:
    revenue = t.one("account.account", [["type.revenue", "=", True], ["name", "=", "Services"]])
    expense = t.one("account.account", [["type.expense", "=", True], ["name", "=", "Services"]])
    hour = t.one("product.uom", [["name", "=", "Hour"]])
    cat, = t.call("model.product.category.create", [{"name": "Services", "accounting": True,
                                                     "account_revenue": revenue, "account_expense": expense}])
    tpl, = t.call("model.product.template.create", [{
        "name": "Consulting hour", "type": "service", "default_uom": hour, "salable": True, "sale_uom": hour,
        "list_price": Decimal("120.00"), "account_category": cat, "products": [["create", [{"suffix_code": "CONS"}]]]}])
    return t.one("product.product", [["template", "=", tpl]]), hour


def bootstrap(url: str, db: str, login: str, password: str, year: int | None = None) -> dict[str, Any]:
    """Set up the company on a freshly initialised database; the ids of what it made."""
    t = Rpc(url, db)
    t.login(login, password)
    year = year or dt.date.today().year
    cur, = t.call("model.currency.currency.create", [{"name": "Euro", "symbol": "€", "code": "EUR",
                                                      "rounding": Decimal("0.01"), "digits": 2}])
    cparty, = t.call("model.party.party.create", [{"name": "Test Company"}])
    company, = t.call("model.company.company.create", [{"party": cparty, "currency": cur}])
    t.call("model.res.user.write", [t.uid], {"companies": [["add", [company]]], "company": company})
    t.context = t.call("model.res.user.get_preferences", True)
    _chart(t, company)
    fy = _fiscal_year(t, company, year)
    product, hour = _product(t)
    t.http.close()
    return {"company": company, "company_party": cparty, "currency": cur, "fiscalyear": fy, "product": product,
            "uom_hour": hour, "admin_login": login, "admin_password": password}
