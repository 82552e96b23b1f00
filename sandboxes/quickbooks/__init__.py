"""A local QuickBooks Online company: ``sandbox.QuickBooksState`` / ``sandbox.build_app`` (``store``,
``qql`` queries, business ``rules`` with ``rulebase``, ``sales`` and ``billed`` documents, ``billing_run``,
``tables``, ``account`` (CompanyInfo, Preferences), ``routes``), ``notify`` for webhooks and ``seed`` for
a chart of items and customers.

Follows ``shared/reference/api-wire-formats.md`` §4 (endpoints §4.2, query language §4.3, CDC §4.4,
SyncToken and requestid §4.5, faults and limits §4.6, shapes §4.7, webhooks §4.8) and, where it is
silent, Intuit's API reference pages: each entity knows its documented properties (``tables``), takes
read-only ones on create and on full or sparse updates and ignores them, and refuses any other with
QBO's 2010 "Unrecognized field" fault. Left out: properties nested in lines and addresses are not
checked; write-on-create opening balances (Customer ``Balance``/``OpenBalanceDate``) are ignored;
custom fields and ``LinkedTxn`` sent on sales forms are ignored (the sandbox derives LinkedTxn); the
entities it does not serve (Vendor, Bill, CreditMemo, ...) answer 4001 to queries and 404 to writes.
"""
