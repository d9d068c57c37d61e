"""What kos asks of the operating system: private paths and small process helpers."""
