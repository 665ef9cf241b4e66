"""pagoPA: identifiers, debt positions, GPD states. See README.md."""
