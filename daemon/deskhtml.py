"""The HTML of the exception desk page (``accord.deskpage``): plain server-rendered forms, every value
escaped, no script. Element ids are stable: the browser test and users' own automation rely on them."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from accord.actors.desk import Entry
from accord.streams.audit import TraceEvent

FILTERS = ("state", "system", "entity", "reason", "correlation_id", "older_than")
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4}.flash{background:#eef6ee;border:1px solid #9c9;padding:.5rem;margin:.5rem 0}
.error{background:#fbeaea;border-color:#d99}form.inline{display:inline}input[type=text]{min-width:14rem}
pre{background:#f8f8f8;padding:.5rem;overflow:auto}.state-open{color:#b00;font-weight:bold}
fieldset{margin:.75rem 0;border:1px solid #ccc}nav a{margin-right:1rem}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · Accord desk</title>"
            f"<style>{_STYLE}</style></head><body><nav><a href='/desk'>Exceptions</a></nav>"
            f"<h1>{escape(title)}</h1>{body}</body></html>")


def _flash(message: str) -> str:
    if not message:
        return ""
    kind = "flash error" if any(w in message for w in ("refused", "not ", "stale", "pick")) else "flash"
    return f"<p id=flash class='{kind}'>{escape(message)}</p>"


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000)) if ms else ""


def _csrf(token: str) -> str:
    return f"<input type=hidden name=csrf value='{escape(token)}'>"


def login_page(next_path: str, error: str, token_needed: bool) -> str:
    token = ("<p><label>Admin token <input id=token type=password name=token autocomplete=off></label></p>"
             if token_needed else "")
    return _page("Sign in", f"{_flash(error)}<form id=login method=post action='/desk/login'>"
                            f"<input type=hidden name=next value='{escape(next_path)}'>{token}"
                            "<p><label>Your name (recorded with each action) <input id=name type=text name=name>"
                            "</label></p><button id=signin type=submit>Sign in</button></form>")


def list_page(entries: Sequence[Entry], params: Mapping[str, str], after: str, message: str, csrf: str,
              states: Sequence[str]) -> str:
    return _page("Exceptions", _flash(message) + _filter_form(params, states) + _table(entries, csrf)
                 + _next_link(params, after))


def _filter_form(params: Mapping[str, str], states: Sequence[str]) -> str:
    chosen = params.get("state", "open")
    options = "".join(f"<option{' selected' if s == chosen else ''}>{escape(s)}</option>" for s in (*states, "all"))
    inputs = "".join(f"<label>{name.replace('_', ' ')} <input type=text name={name} id=filter-{name} "
                     f"value='{escape(params.get(name, ''))}'></label> " for name in FILTERS[1:])
    return (f"<form id=filters method=get action='/desk'><label>state <select name=state id=filter-state>{options}"
            f"</select></label> {inputs}<button id=apply-filters type=submit>Filter</button></form>")


def _table(entries: Sequence[Entry], csrf: str) -> str:
    if not entries:
        return "<p id=empty>No exceptions match.</p>"
    rows = "".join(
        f"<tr id='row-{escape(e.record.exception_id)}'><td><input type=checkbox form=bulk name=id "
        f"value='{escape(e.record.exception_id)}'></td><td>{escape(_when(e.record.created_ms))}</td>"
        f"<td><a class=show href='/desk/{escape(e.record.exception_id)}'>{escape(e.record.exception_id)}</a></td>"
        f"<td class='state-{escape(e.status.state)}'>{escape(e.status.state)}</td><td>{escape(e.record.reason)}</td>"
        f"<td>{escape(e.record.entity)}</td><td>{escape(e.record.target or e.record.source)}</td>"
        f"<td>{escape(e.record.message)}</td></tr>" for e in entries)
    bulk = (f"<form id=bulk method=post action='/desk/bulk'>{_csrf(csrf)}<label>With the selected: <select "
            "name=action id=bulk-action><option>retry</option><option>resolve</option><option>skip</option></select>"
            "</label> <label>note <input type=text name=note></label> <button id=bulk-apply type=submit>Apply"
            "</button></form>")
    return (f"{bulk}<table id=exceptions><thead><tr><th></th><th>Filed</th><th>Exception</th><th>State</th>"
            f"<th>Reason</th><th>Entity</th><th>System</th><th>What happened</th></tr></thead><tbody>{rows}"
            "</tbody></table>")


def _next_link(params: Mapping[str, str], after: str) -> str:
    if not after:
        return ""
    query = urlencode({**{k: v for k, v in params.items() if k in FILTERS}, "after": after})
    return f"<p><a id=next-page href='/desk?{escape(query)}'>Next page</a></p>"


def detail_page(entry: Entry, events: Sequence[TraceEvent], message: str, csrf: str) -> str:
    record, status = entry.record, entry.status
    eid = escape(record.exception_id)
    facts = [("State", status.state + (f" (by {status.by} at {_when(status.at_ms)})" if status.at_ms else "")),
             ("Note", status.note), ("Reason", record.reason), ("What happened", record.message),
             ("Entity", record.entity), ("Target", record.target), ("Source", record.source),
             ("Source id", record.source_id), ("Global id", record.gid), ("Correlation id", record.correlation_id),
             ("Attempts", str(record.attempts or "")), ("Filed", _when(record.created_ms))]
    table = "".join(f"<tr><th>{escape(k)}</th><td id='fact-{escape(k.lower().replace(' ', '-'))}'>{escape(v)}</td>"
                    "</tr>" for k, v in facts if v)
    actions = _actions(entry, csrf) if status.state == "open" else ""
    return _page(f"Exception {record.exception_id}",
                 f"{_flash(message)}<table id=facts>{table}</table>{actions}<h2>Payload</h2>"
                 f"<pre id=payload>{escape(json.dumps(entry.payload(), indent=2, default=str))}</pre>"
                 f"<h2>Trace of the business flow</h2>{_trace(events)}"
                 f"<p><a href='/desk'>Back to the list</a> · <span hidden id=exception-id>{eid}</span></p>")


def _actions(entry: Entry, csrf: str) -> str:
    eid = escape(entry.record.exception_id)
    simple = "".join(
        f"<form class=inline method=post action='/desk/{eid}/{verb}'>{_csrf(csrf)}<input type=text name=note "
        f"placeholder='note (optional)'> <button id={verb} type=submit>{label}</button></form> "
        for verb, label in (("retry", "Retry as it was"), ("resolve", "Resolve (fixed by hand)"),
                            ("skip", "Skip (needs nothing)")))
    fields = (entry.payload() or {}).get("fields")
    if not isinstance(fields, dict) or not fields:
        return f"<fieldset><legend>Act</legend>{simple}</fieldset>"
    inputs = "".join(f"<p><label>{escape(name)} <input type=text id='f-{escape(name)}' name='f.{escape(name)}' "
                     f"value='{escape(field_text(value))}'></label></p>" for name, value in sorted(fields.items()))
    edit = (f"<form id=edit-form method=post action='/desk/{eid}/retry'>{_csrf(csrf)}<input type=hidden "
            f"name=edited value=1>{inputs}<p><label>note <input type=text name=note></label> <button "
            "id=edit-retry type=submit>Save changes and retry</button></p></form>")
    return f"<fieldset><legend>Act</legend>{simple}</fieldset><fieldset><legend>Edit and retry</legend>{edit}</fieldset>"


def field_text(value: Any) -> str:
    """A field's value as the edit form shows it (text as is, anything else as JSON)."""
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _trace(events: Sequence[TraceEvent]) -> str:
    if not events:
        return "<p id=trace-empty>No trace recorded for this flow.</p>"
    rows = "".join(f"<tr><td>{escape(_when(e.at_ms))}</td><td>{escape(e.kind)}</td><td>{escape(e.system)}</td>"
                   f"<td>{escape(e.detail)}</td></tr>" for e in events)
    return f"<table id=trace><thead><tr><th>When</th><th>What</th><th>System</th><th>Detail</th></tr></thead>" \
           f"<tbody>{rows}</tbody></table>"
