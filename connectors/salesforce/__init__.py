"""Salesforce (CRM): the connector, its settings and mapping, and a local sandbox org.

* ``client.SalesforceConnector``: the ``Connector`` the poller and writer use, for the canonical
  ``account``, ``contact``, ``opportunity``, ``invoice`` and ``payment`` entities (Account, Contact,
  Opportunity and the custom objects Invoice__c and Payment__c).
* ``settings.SalesforceSettings``: the ``kind = "salesforce"`` system settings.
* ``mapping``: the conversion functions; ``objects``: the field tables (which references are native);
  ``fieldmap``: the field kinds and wire helpers.
* ``sandbox.SalesforceState`` / ``sandbox.build_app``: the simulator (``schema``, ``store``, ``checks``,
  ``relations`` for cascade deletes and roll-up summaries, ``soql``, ``routes``, ``rows``);
  ``seed.seed_accounts`` / ``seed_contacts`` / ``seed_opportunities`` fill it with client firms, their
  buyers and services deals.
"""
