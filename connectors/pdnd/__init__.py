"""PDND Interoperabilità: client assertion, voucher, ModI signing. See README.md."""
