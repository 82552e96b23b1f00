"""Cross-reference checks of ``[business]`` and ``[sla.*]`` (called by ``accord.config.load.check``),
and the SLA deadline rule (the first invoice run after the clock starts, or ``within`` after it)."""

from __future__ import annotations

import datetime as dt

from accord.config.settings import INVOICE_RUN, Settings, SlaSettings
from accord.model.entities import ENTITY_TYPES


def deadline_ms(sla: SlaSettings, invoice_runs: str | None, start_ms: int) -> int:
    """When an item whose clock started at ``start_ms`` must be done."""
    if sla.within is not None:
        return start_ms + int(sla.within * 1000)
    assert invoice_runs is not None, "config.load.check requires business.invoice_runs"
    import cronsim

    start = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
    return int(next(cronsim.CronSim(invoice_runs, start)).timestamp() * 1000)


def check_business(settings: Settings) -> list[str]:
    errors: list[str] = []
    business = settings.business
    for entity in [*business.processes, *business.backlog]:
        if entity not in ENTITY_TYPES:
            errors.append(f"$.business: `{entity}` is not an entity; expected one of {', '.join(ENTITY_TYPES)}")
    if business.invoice_runs is not None:
        errors += _check_cron("$.business.invoice_runs", business.invoice_runs)
    for edges_name in ("exception_age_buckets", "unbilled_age_buckets"):
        edges = getattr(business, edges_name)
        if list(edges) != sorted(set(edges)) or any(e <= 0 for e in edges):
            errors.append(f"$.business.{edges_name}: give increasing durations above 0, e.g. [\"1h\", \"1d\", \"7d\"]")
    for name, sla in settings.sla.items():
        errors += _check_sla(f"$.sla.{name}", sla, settings)
    return errors


def _check_sla(base: str, sla: SlaSettings, settings: Settings) -> list[str]:
    errors = []
    if (sla.within is None) == (sla.before is None):
        errors.append(f"{base}: give `within` (e.g. \"15m\") or `before = \"{INVOICE_RUN}\"`, one of them")
    if sla.before is not None and settings.business.invoice_runs is None:
        errors.append(f"{base}.before: `{INVOICE_RUN}` needs $.business.invoice_runs (a cron such as "
                      "\"0 6 1 * *\" for 06:00 UTC on the 1st)")
    if sla.track == "provisioning" and settings.provisioning is None:
        errors.append(f"{base}.track: `provisioning` needs a [provisioning] section")
    if sla.track == "delivery":
        errors += _check_delivery(base, sla, settings)
    return errors


def _check_delivery(base: str, sla: SlaSettings, settings: Settings) -> list[str]:
    if sla.entity is None or sla.target is None:
        return [f"{base}: track `delivery` needs `entity` and `target` (e.g. entity = \"time_entry\", target = \"erp\")"]
    ent = settings.entities.get(sla.entity)
    if ent is None:
        return [f"{base}.entity: `{sla.entity}` is not configured under [entities]; configured: "
                f"{', '.join(sorted(settings.entities)) or 'none'}"]
    if sla.target not in ent.systems or sla.target == ent.owner:
        return [f"{base}.target: `{sla.target}` does not receive {sla.entity}; expected one of "
                f"{', '.join(s for s in ent.systems if s != ent.owner)}"]
    return []


def _check_cron(path: str, expression: str) -> list[str]:
    import cronsim

    try:
        cronsim.CronSim(expression, dt.datetime.now(dt.UTC))
    except cronsim.CronSimError as exc:
        return [f"{path}: {expression!r} is not a cron expression ({exc}); e.g. \"0 6 1 * *\" for 06:00 UTC on the 1st"]
    return []
