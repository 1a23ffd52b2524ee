"""UniSS domain core: what a UniSS model *is* (token layout, prompts, audio, codecs, engines, UniST data, metrics).

No orchestration, no servers, no MLflow/KFP/KServe imports (ARCHITECTURE.md).
"""

__version__ = "0.1.0"
