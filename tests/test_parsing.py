"""Which parts of a root model's reply are code that runs."""

from __future__ import annotations

from rlm_cli.loop.parsing import code_blocks, prose


def test_repl_blocks_in_order_and_python_tolerated() -> None:
    reply = "First:\n```repl\nx = 1\n```\nthen\n```python\nprint(x)\n```\n"
    assert code_blocks(reply) == ["x = 1", "print(x)"]


def test_other_languages_and_prose_do_not_run() -> None:
    reply = "FINAL(42)\n```text\nFINAL(1)\n```\n```json\n{}\n```"
    assert code_blocks(reply) == []


def test_bare_fence_counts_only_without_tagged_blocks() -> None:
    assert code_blocks("```\nprint(1)\n```") == ["print(1)"]
    assert code_blocks("```\noutput\n```\n```repl\nprint(2)\n```") == ["print(2)"]


def test_unclosed_last_block_still_runs() -> None:
    assert code_blocks("```repl\nx = [1,\n") == ["x = [1,"]


def test_prose_strips_code() -> None:
    assert prose("Looking.\n```repl\nprint(1)\n```\nDone.") == "Looking.\n\nDone."


def test_a_block_whose_opening_fence_was_lost_still_runs() -> None:
    assert code_blocks("repl\nfor h in hits:\n    print(h)\n```") == ["for h in hits:\n    print(h)"]
    assert code_blocks("python\nx = 1") == ["x = 1"]
    assert code_blocks("repl is the tag to use\nFINAL(1)") == []  # the tag must stand alone


def test_a_tag_written_again_inside_the_block_is_not_code() -> None:
    """The local model writes ```repl, then `repl` on a line of its own: that line is the tag, not a name."""
    assert code_blocks("```repl\nrepl\nprint(1)\n```") == ["print(1)"]
    assert code_blocks("```repl\nrepl\n```") == []
    assert code_blocks("```repl\npy = 3\nprint(py)\n```") == ["py = 3\nprint(py)"]
