"""The demo firm: ``world`` (its three sandboxed systems, seeded), ``activity`` (its people at work) and
``demo`` (``accord demo``, which judges the outcome with the reconciliation engine)."""
