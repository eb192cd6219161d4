"""Hotline: a secure, post-quantum, always-verified direct link between two organisations."""

__version__ = "0.1.0"
