"""The worker process that holds `context` and runs model-written cells, and the host's handle on it.

`protocol` is the wire format, `repl` and `__main__` run inside the worker, `process` is the host's
side. The worker never imports litellm and never sees API keys: its sub-calls travel to the host.
"""
