"""Closed-won provisioning: the provisioner actor, its steps, and the process state kept in Redis."""
