"""Sinks that render a run's events: the live view on stderr and the trajectory file."""
