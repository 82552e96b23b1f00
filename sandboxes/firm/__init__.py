"""The demo firm: ``world`` (its three sandboxed systems, seeded), ``activity`` (its people at work),
``audit`` with ``audit_billing`` (the auditor's record-by-record comparison, verdict in ``report``) and
``demo`` (``accord demo``)."""
