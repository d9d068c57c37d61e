"""The parts of :mod:`kos_core.testing`: waiting on processes, and real kernels."""
