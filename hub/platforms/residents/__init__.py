"""platforms.residents."""
