"""Salesforce (CRM): the connector, its settings and mapping, and a local sandbox org.

* ``client.SalesforceConnector``: the ``Connector`` the poller and writer use.
* ``settings.SalesforceSettings``: the ``kind = "salesforce"`` system settings.
* ``mapping``: Account ↔ canonical ``account`` tables.
* ``sandbox.SalesforceState`` / ``sandbox.build_app``: the simulator (``store``, ``soql``, ``routes``);
  ``seed.seed_accounts`` fills it with client firms.
"""
