"""Registry (anagrafe) adapters: the comune's own resident data (CSV, SQL)."""
