"""platforms.login."""
