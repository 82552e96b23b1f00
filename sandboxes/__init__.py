"""Simulators of the systems Accord connects, apart from the product.

Each ``sandboxes/<system>/`` package is a local stand-in for one real API (wire formats, paging, limits,
errors and idempotency as ``shared/reference`` describes them), with seed data and business rules; ``server``
runs any of them on a port, with fault injection; ``quota`` keeps every API's documented quotas (sliding
windows, concurrency caps, ``quota_scale``) with one bookkeeping. ``firm`` is the demo firm: a world of
client firms, deals, projects and billing that plays users' edits against the three sandboxes, and
``accord demo``.

Product code (``daemon``, ``actors``, ``connectors``, ``streams``, ``model``, ``config``) never imports this
package; ``tests/unit/test_layers.py`` holds that. Only the CLI's ``demo`` command loads ``firm.demo``.
"""
