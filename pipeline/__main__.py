"""`python -m pipeline …` is the `parallax` command."""

from pipeline.cli import app

app()
