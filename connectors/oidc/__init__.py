"""OpenID Connect Federation for SPID and CIE (the Italian rules, "SPID/CIE OIDC Federation").

Platform-independent: no hub imports. ``keys`` makes and rotates the relying party's key
sets, ``federation`` builds entity configurations and resolves trust chains, ``rp`` runs the
authorization code flow of a relying party (request object, PKCE, ``private_key_jwt``, ID
token and userinfo checks, revocation). JWS, JWE and JWK come from ``joserfc``; only the
federation logic that no JOSE library has (trust chains, metadata policy, trust marks) is
written here.
"""
