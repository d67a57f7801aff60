"""SQL statements, shipped as package data (read with importlib.resources)."""
