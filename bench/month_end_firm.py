"""The month-end benchmark's firm, configuration and naive reference (``bench.month_end`` runs them).

* ``MonthEndFirm``: a Harvest PSA sandbox and a QuickBooks ERP sandbox enforcing their documented quotas,
  every window shortened by ``quota_scale``; the PSA holds a 200-consultant firm (clients, projects with
  their tasks, one project team per consultant) and, when ``close_month`` runs, a month of approved,
  billable time (``entries`` time entries, all at once: the month's approvals). Windows the scale would
  make shorter than 1 s keep 1 s with a proportional count (``accord.sandboxes.quota``).
* ``month_end_settings``: the daemon's configuration, written as TOML and loaded by the same loader as
  ``accord check`` (so it is a valid configuration): PSA clients, people, projects, tasks and time flow
  to the ERP; the client's budget windows are the sandboxes' scaled quotas, read from the sandboxes.
* ``naive_drain``: the reference a hand-written integration would be: one POST per entry, in order, and
  on a 429 wait what ``Retry-After`` says (1 s doubling when it says nothing).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from typing import Any

import httpx

from accord.config.load import loads
from accord.config.settings import Settings
from accord.sandboxes.harvest.sandbox import HarvestState
from accord.sandboxes.harvest.sandbox import build_app as build_harvest
from accord.sandboxes.quickbooks.sandbox import QuickBooksState
from accord.sandboxes.quickbooks.sandbox import build_app as build_qbo
from accord.sandboxes.server import SandboxServer

CLIENT_ID, CLIENT_SECRET, REFRESH, PAT, ACCOUNT = "accord-bench", "bench-secret", "bench-refresh-0", "bench-pat", "7654321"
CONSULTANTS, TEAM = 200, 5
TASKS = (("Consulting", 175.0), ("Development", 150.0), ("Project Management", 160.0))
CLIENTS = ("Northwind", "Harbor", "Kestrel", "Meridian", "Lumen", "Granite", "Quayside", "Oakridge", "Silverline",
           "Brightwater")

QBO = {"minute": (500, 60.0), "second": (10, 1.0), "batch": (40, 60.0), "concurrent": 10, "batch_items": 30}
HARVEST = (100, 15.0)


def quota_bound_s(entries: int, quota_scale: float) -> float:
    """The least time QuickBooks' documented write quotas allow for ``entries`` creates: per minute, 40
    ``/batch`` requests of 30 items plus the rest of the 500 requests as single creates (the 10 per
    second cap allows 600 a minute, so it does not bind)."""
    requests, minute = QBO["minute"]
    batches, _ = QBO["batch"]
    per_minute = batches * QBO["batch_items"] + (requests - batches)
    return entries / per_minute * minute / quota_scale


class MonthEndFirm:
    """The PSA and ERP sandboxes of one run, served on localhost."""

    def __init__(self, quota_scale: float, seed: int = 7) -> None:
        self.quota_scale = quota_scale
        self.rng = random.Random(seed)
        self.psa = HarvestState(account_id=ACCOUNT, tokens=(PAT,), rate_limit=HARVEST[0], quota_scale=quota_scale)
        self.erp = QuickBooksState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH,
                                   quota_scale=quota_scale)
        self.psa_server = SandboxServer(build_harvest(self.psa))
        self.erp_server = SandboxServer(build_qbo(self.erp))
        self.teams: list[tuple[int, list[int], list[int]]] = []  # (project, its consultants, its tasks)
        self.references = 0

    def start(self) -> MonthEndFirm:
        self.psa_server.start()
        self.erp_server.start()
        return self

    def stop(self) -> None:
        self.psa_server.stop()
        self.erp_server.stop()

    def seed(self) -> None:
        """Clients, consultants, tasks and projects (one team of five per project) in the PSA."""
        tasks = [self.psa.user_create("tasks", {"name": n, "billable_by_default": True, "default_hourly_rate": r})
                 for n, r in TASKS]
        users = [self.psa.user_create("users", {
            "first_name": f"Consultant{i:03d}", "last_name": "Bench", "email": f"c{i:03d}@firm.example",
            "roles": ["Consultant"], "cost_rate": 70.0, "default_hourly_rate": 160.0}) for i in range(CONSULTANTS)]
        clients = [self.psa.user_create("clients", {"name": f"{n} Holdings Inc.", "currency": "USD"}) for n in CLIENTS]
        for index in range(CONSULTANTS // TEAM):
            client = clients[index % len(clients)]
            project = self.psa.user_create("projects", {
                "client_id": client, "name": f"{CLIENTS[index % len(CLIENTS)]} Engagement {index:02d}",
                "code": f"ME-{index:03d}", "is_billable": True, "bill_by": "Tasks", "budget_by": "project"})
            for task, (_, rate) in zip(tasks, TASKS, strict=True):
                self.psa.user_create("task_assignments", {"project_id": project, "task_id": task, "billable": True,
                                                          "hourly_rate": rate})
            team = users[index * TEAM:(index + 1) * TEAM]
            for user in team:
                self.psa.user_create("user_assignments", {"project_id": project, "user_id": user})
            self.teams.append((project, team, tasks))
        self.references = len(users) + len(clients) + len(self.teams) * (1 + len(TASKS))

    def close_month(self, entries: int) -> None:
        """A month of time, logged by every consultant on their project's tasks, approved at once."""
        days = [d for d in (dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(30)) if d.weekday() < 5]
        slots = [(project, user, tasks) for project, team, tasks in self.teams for user in team]
        ids = []
        for i in range(entries):
            project, user, tasks = slots[i % len(slots)]
            ids.append(self.psa.log_time(user, project, tasks[i % len(tasks)], days[(i // len(slots)) % len(days)].isoformat(),
                                         self.rng.choice((1.0, 2.0, 4.0, 8.0)), f"Month-end work {i}"))
        self.psa.approve_time(ids)

    def erp_count(self, table: str) -> int:
        """Rows of ``table`` in the ERP (nothing is deleted in this benchmark: O(1), so that watching the
        drain does not hold the sandbox's lock)."""
        with self.erp.lock:
            return len(self.erp.realm().tables[table])


def month_end_settings(firm: MonthEndFirm, redis_url: str, data_dir: str, replicas: int) -> Settings:
    """The benchmark's configuration (loaded and validated as ``accord check`` would)."""
    erp = firm.erp.quota_stats()["limits"]  # the sandboxes' windows as they count them (scaled)
    psa = firm.psa.quota_stats()["limits"]["per_15s"]

    def window(shape: dict[str, Any]) -> str:
        return f'{{ requests = {shape["scaled_limit"]}, period = {shape["window"]} }}'

    text = f"""
namespace = "monthend"
data_dir = "{data_dir}"
log_level = "WARNING"
[redis]
url = "{redis_url}"
[ray]
num_cpus = 2
actor_cpus = 0.05
[http]
port = 0
admin_port = 0
[streams]
partitions = 16
read_count = 240
idle_wait = "50ms"
lease_ttl = "5s"
[systems.psa]
kind = "harvest"
base_url = "{firm.psa_server.url}"
account_id = "{ACCOUNT}"
access_token = "{PAT}"
rate_limit = {window(psa)}
[systems.erp]
kind = "quickbooks"
base_url = "{firm.erp_server.url}"
token_url = "{firm.erp_server.url}/oauth2/v1/tokens/bearer"
realm_id = "{firm.erp.realm_id}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
refresh_token = "{REFRESH}"
rate_limit = {window(erp["per_minute"])}
second_limit = {window(erp["per_second"])}
batch_limit = {window(erp["batch"])}
max_concurrent = {QBO["concurrent"]}
"""
    for entity in ("account", "resource", "project", "task"):
        text += f'[entities.{entity}]\nowner = "psa"\nsystems = ["psa", "erp"]\npoll_interval = "1s"\n'
    text += f"""[entities.time_entry]
owner = "psa"
systems = ["psa", "erp"]
exclude = {{ erp = ["locked", "invoice"] }}
when = {{ erp = {{ approval = "approved", billable = true }} }}
replicas = {replicas}
poll_interval = "1s"
"""
    return loads(text, source="month_end.toml", env={})


async def naive_drain(firm: MonthEndFirm, url: str, bodies: list[dict[str, Any]]) -> tuple[float, int]:
    """POST each TimeActivity alone, in order, to the ERP at ``url``, waiting out every 429; (seconds,
    429s received)."""
    base = f"{url}/v3/company/{firm.erp.realm_id}"
    async with httpx.AsyncClient(timeout=30.0) as http:
        token = firm.erp.issue_token()["access_token"]  # as if its OAuth flow had run
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        started, throttled = time.monotonic(), 0
        for i, body in enumerate(bodies):
            backoff = 1.0
            while True:
                answer = await http.post(f"{base}/timeactivity", params={"requestid": f"naive-{i}",
                                                                         "minorversion": 75},
                                         json=body, headers=headers)
                if answer.status_code != 429:
                    answer.raise_for_status()
                    break
                throttled += 1
                wait = answer.headers.get("retry-after")
                await asyncio.sleep(float(wait) if wait else backoff)
                backoff = min(backoff * 2, 60.0)
        return time.monotonic() - started, throttled


def naive_bodies(firm: MonthEndFirm, limit: int) -> list[dict[str, Any]]:
    """The TimeActivity creates Accord sent, as a hand-written integration would send them."""
    with firm.erp.lock:
        rows = [row.wire for row in firm.erp.realm().tables["TimeActivity"].values() if not row.deleted][:limit]
    keep = ("NameOf", "EmployeeRef", "CustomerRef", "ItemRef", "TxnDate", "Hours", "Minutes", "HourlyRate",
            "BillableStatus", "Description")
    return [{k: v for k, v in row.items() if k in keep} for row in rows]
