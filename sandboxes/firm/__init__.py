"""The demo firm: ``world`` (and ``world_billing``) play a services firm's users against the three
sandboxes; ``demo`` runs ``accord demo`` on them."""
