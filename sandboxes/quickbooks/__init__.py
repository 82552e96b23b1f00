"""A local QuickBooks Online company: ``sandbox.QuickBooksState`` / ``sandbox.build_app`` (``store``,
``qql`` queries, business ``rules`` with ``rulebase``, ``sales`` and ``billed`` documents, ``billing_run``,
``tables``, ``routes``), ``notify`` for webhooks and ``seed`` for a chart of items and customers."""
