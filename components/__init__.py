"""Kubeflow Pipelines components: one thin lightweight-Python component per pipeline step.

Each component is a typed signature plus a body that turns artifacts into paths, calls ONE library
function (in ``uniss``, ``training`` or ``serving``) and records its outputs (STYLE.md #1). Bodies
import inside the function because KFP serialises the function source into the task.
"""
