"""QuickBooks Online (ERP): the connector (``client``), its settings and wire mapping (the simulator is ``accord.sandboxes.quickbooks``)."""
