"""Reconciliation: the reconciler (compare one entity between two systems) and the scheduler that runs jobs."""
