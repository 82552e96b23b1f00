"""A real Tryton server run locally (not a simulator): template database, clones, start and stop."""
