"""QuickBooks Online (ERP): the connector (``client``), its wire mapping and its sandbox."""
