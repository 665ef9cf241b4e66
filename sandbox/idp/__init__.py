"""Sandbox SPID/CIE identity provider."""
