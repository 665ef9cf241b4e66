"""Sandbox twin of the PDND token server."""
