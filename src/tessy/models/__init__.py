"""Model files that tessy assembles itself (GGUFs shipped on PyPI in parts)."""
