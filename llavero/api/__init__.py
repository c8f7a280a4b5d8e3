"""The REST API under `/v1`: one router module per resource, the error answers (`errors`) and
the verify fast path. `llavero.application.create_app` mounts them, beside the console."""
