"""Campaign sources: where the recipients of an App IO campaign come from (besides a CSV)."""
