"""KFP pipelines (end-to-end retrain, ablations) and the ``uniss`` CLI. Nothing imports this package."""
