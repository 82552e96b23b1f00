"""An independent oracle for the end-to-end tests: reads the three sandboxes' own records, wire by wire,
and compares them through the global ids Accord keeps in Redis. It shares no code with the reconciliation
engine it helps to check (the demo and operators use that engine; tests should not grade it by itself)."""
