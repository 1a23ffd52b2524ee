"""The embedded stack: SeaweedFS S3 and an MLflow server on 127.0.0.1, supervised as processes.

Used by ``pipelines`` and the tests; the library layers never import it.
"""
