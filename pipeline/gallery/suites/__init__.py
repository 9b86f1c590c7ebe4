"""Staging test suites of the sample gallery service.

Each suite is a script, `python -m pipeline.gallery.suites.<name>`, that tests the
instance at $TARGET_URL and exits 0 on success, or 1 with a one-line reason on stderr.
"""
