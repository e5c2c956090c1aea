"""`python -m rlm_cli` is `rlm`."""

from rlm_cli.cli import main

main()
