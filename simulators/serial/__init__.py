"""Simulated serial UHF module (M100 family) over ``socket://`` or a pty."""
