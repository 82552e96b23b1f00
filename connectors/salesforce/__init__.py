"""Salesforce (CRM): the connector, its settings and mapping, and a local sandbox org.

* ``client.SalesforceConnector``: the ``Connector`` the poller and writer use, for the canonical
  ``account``, ``contact`` and ``opportunity`` entities (Account, Contact, Opportunity).
* ``settings.SalesforceSettings``: the ``kind = "salesforce"`` system settings.
* ``mapping``: the conversion functions; ``objects``: the field tables (which references are native);
  ``fieldmap``: the field kinds and wire helpers.
* ``sandbox.SalesforceState`` / ``sandbox.build_app``: the simulator (``schema``, ``store``, ``soql``,
  ``routes``, ``rows``); ``seed.seed_accounts`` / ``seed_contacts`` / ``seed_opportunities`` fill it with
  client firms, their buyers and services deals.
"""
