"""Tryton 8.2 (ERP / PSA / CRM) over JSON-RPC with a session login.

Entities: ``account`` ← ``party.party`` (first slice). Modules: ``settings`` (the ``kind = "tryton"`` table),
``codec`` (Tryton's JSON value encoding), ``session`` (login, context, error tree), ``mapping`` (wire ↔
canonical), ``client`` (the ``Connector``), ``plugin`` (the ``SystemSpec``).
"""
