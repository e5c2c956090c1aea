"""`rlm bench`: answer quality measured offline.

Tasks are generated from a seed (`tasks/`, one module per family) or read from a JSONL file,
answered by one or more methods (`methods`: this tool, and the paper's baselines), scored with
the published rules (`scoring`), run in parallel (`runner`) and reported as a table, JSON and a
plot (`report`, `plot`). Nothing is downloaded: the inputs are built here, and the `code`
family reads a package already installed.
"""
