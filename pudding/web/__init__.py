"""The HTTP API: a Falcon WSGI app (`create_app`) served by waitress (`python -m pudding.web`)."""

from pudding.web.app import create_app

__all__ = ["create_app"]
