"""Llavero: a self-hosted API key console and key verification service."""

__version__ = "0.1.0"
