"""Reaching a kos endpoint: addresses and SBHs, the opening handshake, TLS, and what a
listener's unauthenticated connections may cost it.
"""
