"""Change records, canonical entities, Redis Streams plumbing and Redis-backed state."""
