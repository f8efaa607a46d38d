"""Helpers for testing Gantry services: a probe service and in-process servers."""
