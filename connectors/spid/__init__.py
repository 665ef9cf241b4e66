"""SPID and CIE login: a SAML service provider for many tenants. See README.md."""
