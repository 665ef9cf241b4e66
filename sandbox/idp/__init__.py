"""Sandbox SPID/CIE test identity provider: ``app.create_app`` (routes in its docstring)."""
