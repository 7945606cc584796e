"""Parallax: Hebrew, Arabic and English news coverage side by side, in English, in DuckDB.

Every stage is a plain function over the typed records in :mod:`pipeline.records`.
Nothing heavy is imported here: Airflow parses DAG files that import this package.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
