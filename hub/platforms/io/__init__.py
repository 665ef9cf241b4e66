"""platforms.io."""
