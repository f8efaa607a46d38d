"""Gantry."""
