"""Salesforce (CRM): the connector, its settings and mapping (the simulator is ``accord.sandboxes.salesforce``).

* ``client.SalesforceConnector``: the ``Connector`` the poller and writer use, for the canonical
  ``account``, ``contact``, ``opportunity``, ``invoice`` and ``payment`` entities (Account, Contact,
  Opportunity and the custom objects Invoice__c and Payment__c).
* ``settings.SalesforceSettings``: the ``kind = "salesforce"`` system settings.
* ``mapping``: the conversion functions; ``objects``: the field tables (which references are native);
  ``fieldmap``: the field kinds and wire helpers.
"""
