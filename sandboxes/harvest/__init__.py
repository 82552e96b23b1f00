"""A local Harvest v2 account: ``sandbox.HarvestState`` / ``sandbox.build_app`` (``store``, ``invoices``
and ``ledger`` for invoicing, ``routes``); ``seed.seed_firm`` fills it with a services firm."""
