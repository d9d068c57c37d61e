"""The kernel's parts: namespace, plugin registration, supervision, setup files, logs.

:mod:`.core` puts them together into the one process ``kos run`` starts.
"""
