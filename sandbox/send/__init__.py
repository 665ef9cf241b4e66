"""Sandbox twin of SEND (Piattaforma Notifiche Digitali)."""
