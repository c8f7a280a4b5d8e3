"""Django REST Framework guarded by djangorestframework-api-key, configured for speed.

DEBUG is off, no middleware, no session or user authentication: only the `HasAPIKey`
permission runs, which is what a DRF user would deploy for machine-to-machine keys.
"""
