"""The shell completion scripts in completions/ are what the CLI generates today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_is_current(shell: str) -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "rlm_cli"],
        env={**os.environ, "_RLM_COMPLETE": f"source_{shell}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "_RLM_COMPLETE" in generated
    assert (COMPLETIONS / f"rlm.{shell}").read_text() == generated, (
        f"regenerate with: _RLM_COMPLETE=source_{shell} rlm > completions/rlm.{shell}"
    )


def test_completion_offers_options() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_cli"],
        env={**os.environ, "_RLM_COMPLETE": "complete_bash", "COMP_WORDS": "rlm ask --max-cos", "COMP_CWORD": "2"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == ["--max-cost"]


def test_completion_offers_the_run_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlm_cli"],
        env={**os.environ, "_RLM_COMPLETE": "complete_bash", "COMP_WORDS": "rlm runs ex", "COMP_CWORD": "2"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == ["export"]
    show = subprocess.run(
        [sys.executable, "-m", "rlm_cli"],
        env={**os.environ, "_RLM_COMPLETE": "complete_bash", "COMP_WORDS": "rlm show last --h", "COMP_CWORD": "3"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--html" in show.stdout.split()
