"""Sandbox twin of pagoPA (GPD for now)."""
