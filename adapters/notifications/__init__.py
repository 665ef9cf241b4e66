"""Reference SEND notification sources (``hub_send_sources``): a CSV file and a SQL query."""
