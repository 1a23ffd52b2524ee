"""Registries: the MLflow model registry (register with lineage, champion/challenger aliases,
promote, roll back) and the DVC data registry (versioned UniST shards in S3-compatible storage).

Depends on ``uniss`` and ``serving``; never on ``pipelines`` or ``training``.
"""
