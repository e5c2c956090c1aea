"""The root loop: the root model writes cells, the worker runs them, until code calls FINAL."""
