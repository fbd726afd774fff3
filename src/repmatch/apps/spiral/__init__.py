"""Controlled studies built on the library's distances (clients of the core, no private copies)."""
