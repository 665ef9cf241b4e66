"""platforms.suap."""
