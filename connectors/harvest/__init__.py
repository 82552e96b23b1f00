"""Harvest v2 (PSA): the connector, its settings and mapping, and a local sandbox account.

* ``client.HarvestConnector``: the ``Connector`` the poller and writer use (plus ``scan_ids`` for the
  scheduled delete detection); ``session`` does HTTP and errors, ``writer`` the per-op writes.
* ``settings.HarvestSettings``: the ``kind = "harvest"`` system settings.
* ``mapping``: clients, contacts, projects, task assignments, users, time entries and expenses ↔
  canonical ``account``, ``contact``, ``project``, ``task``, ``resource``, ``time_entry``, ``expense``
  (shared converters in ``convert``); ``billing``: invoices and invoice payments ↔ ``invoice`` and
  ``payment``, written by ``billing_writer`` and polled through their invoices by ``billing_reader``.
* ``sandbox.HarvestState`` / ``sandbox.build_app``: the simulator (``store``, ``invoices`` and
  ``ledger`` for invoicing, ``routes``); ``seed.seed_firm`` fills it with a services firm.
"""
