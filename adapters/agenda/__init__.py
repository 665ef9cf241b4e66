"""Agenda adapters: the ``booking`` adapter kind (a comune's existing appointment software)."""
