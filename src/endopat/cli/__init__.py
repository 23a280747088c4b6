"""The ``endopat`` command line: a thin typer layer over the Python API (one module per command
group; :mod:`endopat.cli.app` holds the app, the shared options and ``main``)."""

from endopat.cli import data, serve, study, train, use  # noqa: F401  (each registers its commands on the app)
from endopat.cli.app import app, main

__all__ = ["app", "main"]
