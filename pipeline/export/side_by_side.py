"""An event's coverage side by side: the entry points `parallax export` and the demo use.

The model is in `statements` (rows = statements, columns = outlets), the renderers in `formats`.
"""

from __future__ import annotations

from pipeline.export.formats import FORMATS, render_html, render_markdown, write_export
from pipeline.export.statements import EventStatements, UnknownEvent, load_event, load_events

__all__ = [
    "FORMATS",
    "EventStatements",
    "UnknownEvent",
    "load_event",
    "load_events",
    "render_html",
    "render_markdown",
    "write_export",
]
