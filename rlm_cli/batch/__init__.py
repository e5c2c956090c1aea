"""`rlm batch`: many asks from one task file, resumable, on this machine or on a Ray cluster.

    tasks.py    the task file (one JSON object a line) -> `Task`s, and `Problem`s with line numbers
    results.py  the results file: one record a line, appended as tasks end; what makes a rerun resume
    events.py   what a batch reports while it runs, and its `Summary`
    runner.py   the bookkeeping every runner shares (`Batch`), and the runner for this machine
    on_ray.py   the runner for a Ray cluster (imports Ray; nothing else here does)

Nothing here prints or picks an exit code: the CLI renders the events and maps the `Summary`.
"""
