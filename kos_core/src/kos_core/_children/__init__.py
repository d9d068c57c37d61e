"""Factory children: one-shot servers a plugin starts for each client, forked from a
preloaded fork server ahead of need, within per-client and total caps.
"""
