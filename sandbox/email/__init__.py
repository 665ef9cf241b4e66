"""A twin of an SMTP submission server (``aiosmtpd``): envelope and header checks,
AUTH and STARTTLS, stored messages with duplicates counted by ``Message-ID``, faults on
demand, and an HTTP inspection app (``/__sandbox/...``)."""
