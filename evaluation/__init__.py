"""Evaluation: score a model on a UniST split (Speech-BLEU, Text-BLEU, SLC, speaker similarity,
MOS proxy) beside its toplines and slices, write reports, compare runs (paper Table 4).

Depends on ``uniss`` (metrics, data) and ``serving`` (the translation engine); never on
``pipelines`` or ``training``.
"""
