"""Harvest v2 (PSA): the connector, its settings and mapping (the simulator is ``accord.sandboxes.harvest``).

* ``client.HarvestConnector``: the ``Connector`` the poller and writer use (plus ``scan_ids`` for the
  scheduled delete detection); ``session`` does HTTP and errors, ``writer`` the per-op writes.
* ``settings.HarvestSettings``: the ``kind = "harvest"`` system settings.
* ``mapping``: clients, contacts, projects, task assignments, users, time entries and expenses ↔
  canonical ``account``, ``contact``, ``project``, ``task``, ``resource``, ``time_entry``, ``expense``
  (shared converters in ``convert``); ``billing``: invoices and invoice payments ↔ ``invoice`` and
  ``payment``, written by ``billing_writer`` and polled through their invoices by ``billing_reader``.
"""
