"""Infrastructure as code: ``infra.local`` (the embedded stack) and ``infra/k8s`` (kustomize)."""
