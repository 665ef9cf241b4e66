"""App IO (API for public bodies): client, models, errors. See README.md."""
