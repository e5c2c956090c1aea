"""`rlm ask --dry-run`: files, tokens, the root prompt's size and a cost range, with no model call."""

from rlm_cli.dryrun.plan import DryRun, context_summary, dry_run, plan

__all__ = ["DryRun", "context_summary", "dry_run", "plan"]
