"""Packaging details pyproject.toml cannot express: read-only resources that stay where the
checkout keeps them (the schema in warehouse/, the sample in samples/, the registry in models/)
ship inside the package as pipeline/schema, pipeline/sample and pipeline/registry, so the
checkout layout is unchanged and each file has one source of truth. Metadata is in pyproject.
"""

from setuptools import find_packages, setup

RESOURCES = {
    "pipeline.schema": "warehouse",
    "pipeline.sample": "samples",
    "pipeline.registry": "models",
}

setup(
    packages=[*find_packages(include=["pipeline", "pipeline.*"]), *RESOURCES],
    package_dir=RESOURCES,
    package_data={
        # templates of every format (export/, report/...), the outlet catalogue
        "pipeline": ["py.typed", "**/templates/**/*", "**/*.j2", "catalog/*.toml"],
        "pipeline.schema": ["*.sql"],  # never the warehouse's own *.duckdb files
        "pipeline.sample": ["**/*"],
        "pipeline.registry": ["registry.toml", "README.md"],  # never models/store
    },
    exclude_package_data={"pipeline.sample": ["**/__pycache__/*", "**/*.pyc"]},
)
