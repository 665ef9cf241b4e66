"""Accounting (ragioneria) adapters: where debt positions come from and receipts go."""
