"""``python -m pipelines.cli`` == the ``uniss`` console script."""

from pipelines.cli import main

main()
