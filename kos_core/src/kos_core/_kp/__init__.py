"""Knowbot Programs: untrusted, mobile code a kernel (a *station*) runs confined.

====================  ============================================================
module                its one job
====================  ============================================================
``policy``            the station's ``[kp-access]`` policy and a KP's limits
``station``           the kernel side: start, watch, limit, kill and list KPs
``session``           the kernel operations on KPs, as a connection sees them
``confine``           Landlock, network namespace, own uid, rlimits (Linux)
``runner``            the KP's process: confine itself, rebuild the KP, run it
``bastion``           the ``kos`` object a KP's ``__main__(kos)`` receives
``codec``             a KP's state as plain data (no pickle), for migration
``migration``         move a KP to another kernel, through the stations
====================  ============================================================
"""
