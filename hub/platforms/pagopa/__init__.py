"""platforms.pagopa."""
