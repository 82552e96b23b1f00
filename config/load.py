"""Load configuration: TOML → ``${ENV}`` substitution → typed Structs → cross-reference checks.

Nothing else in Accord reads ``os.environ``. Every error names the JSON path, the bad value and what
is expected; ``load`` collects every cross-reference error before raising one ``ConfigError``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from accord.config.business import check_business
from accord.config.settings import NAME_PATTERN, EntitySettings, Settings
from accord.config.systems import SystemSettings, plugins
from accord.config.types import dec_hook
from accord.config.validate import Filled, walk
from accord.model.entities import ENTITY_TYPES, entity_fields

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The configuration cannot be used. ``errors`` lists one ``"$.path: message"`` per problem."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} configuration error(s):\n" + "\n".join(
            f"  {e}" for e in errors))


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"$: cannot read the file ({exc.strerror}); pass an existing "
                                      "file with --config"]) from exc
    return loads(text, source=str(path), env=env)


def loads(text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> Settings:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"$: not valid TOML ({exc}); fix the syntax"]) from exc
    return from_dict(raw, source=source, env=os.environ if env is None else env)


def from_dict(raw: dict[str, Any], *, source: str = "<config>", env: Mapping[str, str]) -> Settings:
    """Every error of the file at once (bad keys and values everywhere, then cross-references)."""
    errors: list[str] = []
    substituted = _substitute(raw, "$", env, errors)
    if errors:
        raise ConfigError(source, errors)
    if not substituted.get("systems"):
        errors.append("$.systems: no systems configured; add a [systems.NAME] table for each system Accord "
                      "syncs (kind, base_url, credentials; see config/examples/)")
    systems, system_errors = _decode_systems(substituted.get("systems", {}))
    typed, found = walk({k: v for k, v in substituted.items() if k != "systems"}, Settings, "$")
    errors += system_errors + found
    if errors:
        raise ConfigError(source, errors)
    try:
        settings = msgspec.convert({**typed, "systems": {}}, Settings, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, [_path_first(str(exc))]) from exc
    # a relative data_dir is the started-in directory's; absolute, so a unix:// URL built on it is a path
    settings = msgspec.structs.replace(settings, systems=systems,
                                       data_dir=str(Path(settings.data_dir).expanduser().absolute()))
    errors = check(settings)
    if errors:
        raise ConfigError(source, errors)
    return settings


def _decode_systems(tables: Any) -> tuple[dict[str, SystemSettings], list[str]]:
    """Each ``[systems.X]`` table through the settings type of its ``kind`` (a registered plug-in)."""
    if not isinstance(tables, dict):
        return {}, [f"$.systems: expected a table of systems, got {type(tables).__name__}"]
    kinds = plugins()
    systems: dict[str, SystemSettings] = {}
    errors: list[str] = []
    for name, table in tables.items():
        base = f"$.systems.{name}"
        if not re.fullmatch(NAME_PATTERN, str(name)):
            errors.append(f"{base}: a system name must match {NAME_PATTERN} (lower case, digits, _), got {name!r}")
            continue
        kind = table.get("kind") if isinstance(table, dict) else None
        if kind not in kinds:
            close = difflib.get_close_matches(str(kind), list(kinds), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            errors.append(f"{base}.kind: unknown system kind {kind!r}{hint}; expected one of {', '.join(kinds)} "
                          "(a plug-in adds more through the `accord.systems` entry points)")
            continue
        typed, found = walk(table, kinds[kind].settings, base)
        errors += found
        if found:
            continue
        try:
            systems[name] = msgspec.convert(typed, kinds[kind].settings, dec_hook=dec_hook)
        except msgspec.ValidationError as exc:
            errors.append(_path_first(str(exc), base))
    return systems, errors


def _path_first(message: str, root: str = "$") -> str:
    """msgspec says ``"Expected `int`, got `str` - at `$.streams.partitions`"``; lead with the path."""
    match = re.search(r" - at `([^`]*)`$", message)
    if match:
        return f"{root}{match.group(1)[1:]}: {message[: match.start()]}"
    return f"{root}: {message}"


def _substitute(value: Any, path: str, env: Mapping[str, str], errors: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, f"{path}.{k}", env, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", env, errors) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append(f"{path}: environment variable `{name}` is not set; export it or write "
                      f"`${{{name}:-default}}`")
        return ""

    filled = _ENV_REF.sub(replace, value)
    return Filled(filled) if filled != value or _ENV_REF.search(value) else filled


def check(settings: Settings) -> list[str]:
    """Cross-reference checks msgspec cannot express: every name must point at something configured."""
    errors: list[str] = []
    for name, ent in settings.entities.items():
        base = f"$.entities.{name}"
        if name not in ENTITY_TYPES:
            errors.append(f"{base}: unknown entity `{name}`; expected one of {', '.join(ENTITY_TYPES)}")
            continue
        errors += _check_systems(base, ent, set(settings.systems))
        errors += _check_fields(base, name, ent)
        if ent.replicas > settings.streams.partitions:
            errors.append(f"{base}.replicas: {ent.replicas} replicas exceed streams.partitions "
                          f"({settings.streams.partitions}); each replica needs a partition")
    return (errors + _check_mappings(settings) + _check_reconcile(settings) + _check_provisioning(settings)
            + _check_http(settings) + check_business(settings))


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _check_http(settings: Settings) -> list[str]:
    http = settings.http
    errors = []
    if http.admin_host not in LOOPBACK and not http.admin_token:
        errors.append(f"$.http.admin_token: required when $.http.admin_host ({http.admin_host}) is not the local "
                      "host: the desk shows full payloads and acts on them; set admin_token (e.g. "
                      "\"${ACCORD_ADMIN_TOKEN}\") or bind admin_host to 127.0.0.1")
    if http.admin_port and http.admin_port == http.port and http.admin_host == http.host:
        errors.append(f"$.http.admin_port: {http.admin_port} is also $.http.port; the admin listener needs its own "
                      "port (it must not face the internet with /webhooks)")
    return errors


def _check_provisioning(settings: Settings) -> list[str]:
    prov = settings.provisioning
    if prov is None:
        return []
    base = "$.provisioning"
    errors = [f"{base}.{role}: `{system}` is not a configured system; configured systems: "
              f"{', '.join(sorted(settings.systems))}"
              for role, system in (("crm", prov.crm), ("psa", prov.psa), ("erp", prov.erp))
              if system not in settings.systems]
    for role, entity in (("crm", "opportunity"), ("erp", "account"), ("psa", "project"), ("psa", "task")):
        system, ent = getattr(prov, role), settings.entities.get(entity)
        if ent is None and role == "psa" and prov.psa == prov.erp:
            continue  # one system is both PSA and ERP: it holds the projects alone, nothing to sync them to
        if ent is None:
            errors.append(f"{base}.{role}: provisioning needs entity `{entity}`, which is not configured under "
                          f"[entities]; add [entities.{entity}] synced with `{system}`, or remove [provisioning]")
        elif system not in ent.systems:
            errors.append(f"{base}.{role}: provisioning needs entities.{entity} synced with `{system}` "
                          f"(add it to entities.{entity}.systems)")
    known = entity_fields("account")
    errors += [f"{base}.required[{i}]: `{f}` is not a field of account; expected one of {', '.join(known)}"
               for i, f in enumerate(prov.required) if f not in known]
    if not prov.templates:
        errors.append(f"{base}.templates: give at least one work breakdown (e.g. [provisioning.templates.default])")
    for name, template in prov.templates.items():
        if not template.phases or any(not phase.tasks for phase in template.phases):
            errors.append(f"{base}.templates.{name}.phases: every template needs phases, each with tasks")
    return errors


def _check_reconcile(settings: Settings) -> list[str]:
    errors: list[str] = []
    for name, job in settings.reconcile.items():
        base = f"$.reconcile.{name}"
        ent = settings.entities.get(job.entity)
        if ent is None:
            errors.append(f"{base}.entity: `{job.entity}` is not configured under [entities]; add "
                          f"[entities.{job.entity}] or remove [reconcile.{name}]")
            continue
        errors += [f"{base}.{side}: `{system}` does not hold {job.entity}; expected one of {ent.systems}"
                   for side, system in (("source", job.source), ("target", job.target)) if system not in ent.systems]
        known = entity_fields(job.entity)
        named = [("fields", f) for f in job.fields] + [("sum", f) for f in job.sum] + [
            ("where", f) for f in (job.where or {})] + [("target_where", f) for f in job.target_where] + (
            [("period", job.period)] if job.period else [])
        errors += [f"{base}.{where}: `{field}` is not a field of {job.entity}; expected one of {', '.join(known)}"
                   for where, field in named if field not in known]
        if job.interval is not None and job.cron is not None:
            errors.append(f"{base}: give `interval` or `cron`, not both")
        if job.cron is not None:
            errors += _check_cron(f"{base}.cron", job.cron)
    return errors


def _check_cron(path: str, expression: str) -> list[str]:
    import cronsim

    try:
        cronsim.CronSim(expression, dt.datetime.now(dt.UTC))
    except cronsim.CronSimError as exc:
        return [f"{path}: {expression!r} is not a cron expression ({exc}); e.g. \"0 2 * * *\" for 02:00 UTC daily"]
    return []


def _check_mappings(settings: Settings) -> list[str]:
    errors: list[str] = []
    for system, maps in settings.mappings.items():
        if system not in settings.systems:
            errors.append(f"$.mappings.{system}: unknown system `{system}`; configured systems: "
                          f"{', '.join(sorted(settings.systems))}")
        for entity, emap in maps.items():
            base = f"$.mappings.{system}.{entity}"
            if entity not in settings.entities or system not in settings.entities[entity].systems:
                errors.append(f"{base}: `{system}` does not hold `{entity}` in this config (entities.{entity}.systems)")
                continue
            known = entity_fields(entity)
            for field, rule in emap.fields.items():
                if field not in known:
                    errors.append(f"{base}.fields.{field}: `{field}` is not a field of {entity}; expected one of "
                                  f"{', '.join(known)}")
                if rule.lookup and rule.lookup not in settings.lookups:
                    errors.append(f"{base}.fields.{field}.lookup: no lookup table `{rule.lookup}`; define "
                                  f"[lookups.{rule.lookup}]")
                if rule.path is None and rule.const is None:
                    errors.append(f"{base}.fields.{field}: give `path` (read from the wire) or `const`")
    return errors


def _check_systems(base: str, ent: EntitySettings, systems: set[str]) -> list[str]:
    errors = [f"{base}.systems[{i}]: unknown system `{system}`; configured systems: "
              f"{', '.join(sorted(systems)) or 'none'}" for i, system in enumerate(ent.systems) if system not in systems]
    if len(set(ent.systems)) < 2:
        errors.append(f"{base}.systems: an entity needs at least two distinct systems to sync, got {ent.systems}")
    if ent.owner not in ent.systems:
        errors.append(f"{base}.owner: `{ent.owner}` is not one of this entity's systems {ent.systems}")
    return errors


def _check_fields(base: str, name: str, ent: EntitySettings) -> list[str]:
    errors: list[str] = []
    known = entity_fields(name)
    for field, owner in ent.fields.items():
        if field not in known:
            errors.append(f"{base}.fields.{field}: `{field}` is not a field of {name}; expected one of "
                          f"{', '.join(known)}")
        if owner not in ent.systems:
            errors.append(f"{base}.fields.{field}: owner `{owner}` is not one of this entity's systems {ent.systems}")
    for target, conditions in ent.when.items():
        if target not in ent.systems:
            errors.append(f"{base}.when.{target}: `{target}` is not one of this entity's systems {ent.systems}")
        errors += [f"{base}.when.{target}.{field}: `{field}` is not a field of {name}; expected one of "
                   f"{', '.join(known)}" for field in conditions if field not in known]
    for system, fields in ent.exclude.items():
        if system not in ent.systems:
            errors.append(f"{base}.exclude.{system}: `{system}` is not one of this entity's systems {ent.systems}")
        errors += [f"{base}.exclude.{system}: `{field}` is not a field of {name}; expected one of "
                   f"{', '.join(known)}" for field in fields if field not in known]
    errors += _check_locked(base, name, ent)
    for i, rule in enumerate(ent.match):
        if not rule:
            errors.append(f"{base}.match[{i}]: an empty rule would match everything; list one or more fields")
        errors += [f"{base}.match[{i}][{j}]: `{field}` is not a field of {name}; expected one of {', '.join(known)}"
                   for j, field in enumerate(rule) if field not in known]
    return errors

def _check_locked(base: str, name: str, ent: EntitySettings) -> list[str]:
    lock = ent.locked
    if lock is None:
        return []
    known = entity_fields(name)
    errors = [f"{base}.locked.{key}: `{field}` is not a field of {name}; expected one of {', '.join(known)}"
              for key, field in (("measure", lock.measure), ("date_field", lock.date_field))
              if field is not None and field not in known]
    if lock.target not in ent.systems:
        errors.append(f"{base}.locked.target: `{lock.target}` is not one of this entity's systems {ent.systems}")
    if lock.policy == "adjust" and lock.measure is None:
        errors.append(f"{base}.locked.measure: the adjust policy needs the numeric field adjustments carry "
                      "(e.g. \"hours\")")
    if lock.closed_through is not None and lock.date_field is None:
        errors.append(f"{base}.locked.date_field: closed_through needs the date field that places a record "
                      "in a period (e.g. \"work_date\")")
    return errors


def ray_address(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """The Ray cluster to join: ``ray.address`` in config, else ``RAY_ADDRESS``, else None (local)."""
    env = os.environ if env is None else env
    return settings.ray.address or env.get("RAY_ADDRESS") or None
