"""SUAP adapters: the comune's back office for business practices (pratiche SUAP)."""
