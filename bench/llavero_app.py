"""Llavero's ASGI app for servers other than `llavero serve` (granian), set up by LLAVERO_*.

Built as `llavero serve` builds it, so only the HTTP server differs between the two scenarios.
"""

from llavero.api import create_app
from llavero.config import Settings
from llavero.service import Llavero

app = create_app(Llavero(Settings()), background=True)
