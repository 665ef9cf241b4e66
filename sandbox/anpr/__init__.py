"""Sandbox twin of the ANPR gateway (GovWay front door + e-services)."""
