"""Tryton 8.2 (ERP / PSA / CRM) over JSON-RPC with a session login.

Entities: ``account`` ← ``party.party``, ``resource`` ← ``company.employee``, ``project`` and ``task`` ←
``project.work``, ``time_entry`` ← ``timesheet.line``, ``invoice`` ← ``account.invoice`` (read only),
``opportunity`` ← ``sale.opportunity``. Modules: ``settings`` (the ``kind = "tryton"`` table), ``codec``
(Tryton's JSON value encoding), ``session`` (login, context, error tree), ``mapping`` (party wire ↔
canonical, the mapper), ``psa`` (employee, work and timesheet wire ↔ canonical), ``sales`` (invoice and
opportunity wire ↔ canonical), ``entities``/``works``/``billing`` (each entity's reads and writes),
``client`` (the ``Connector``), ``plugin`` (the ``SystemSpec``).
"""
