"""Adapter kit: contract tests, a pytest plugin and a scaffold for adapter authors."""
