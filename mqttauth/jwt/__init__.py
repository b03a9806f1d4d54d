"""The ``jwt`` authenticator: JWT validation, static keys and JWKS key sources.

:mod:`.validation` and :mod:`.keys` are pure; :mod:`.jwks` fetches key sets
on Twisted; :mod:`.authenticator` ties them to the broker's IAuthenticator.
"""
