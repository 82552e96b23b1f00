"""A local Harvest v2 account: ``sandbox.HarvestState`` / ``sandbox.build_app`` (``store``, ``invoices``
and ``ledger`` for invoicing, ``routes``); ``seed.seed_firm`` fills it with a services firm.

Follows ``shared/reference/api-wire-formats.md`` §3 (endpoints §3.2, paging §3.3, limits and errors
§3.5, approvals §3.7, shapes §3.8), including ``GET /v2/company`` and ``GET /v2/users/me``. Where the
reference is silent (read-only and unknown parameters on writes) it ignores what a resource does not
take, as Harvest's API does; ``sandbox`` lists what it leaves out."""
