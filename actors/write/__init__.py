"""Writing to targets: the writer and its lanes (one per target), the per-record pending book, the planner
of writes, the outcome of a batch, its commit, and the policies for locked records."""
