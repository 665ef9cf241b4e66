"""Sandbox twin of INAD (the national index of digital domiciles)."""
