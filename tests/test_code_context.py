"""The code graph as the root model sees it: `context.symbols/...` in the REPL, the prompt, `rlm inspect`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import run_rlm
from scripted_server import last_user_text


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def make_repo(root: Path) -> None:
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "models.py").write_text(
        "class Order:\n"
        "    def save(self):\n"
        "        return store(self)\n"
        "\n"
        "    def total(self):\n"
        "        return sum(self.items)\n"
        "\n"
        "\n"
        "def store(obj):\n"
        "    return obj\n"
    )
    (root / "shop" / "api.py").write_text(
        "from .models import Order\n"
        "\n"
        "\n"
        "def checkout(order: Order):\n"
        "    order.save()\n"
        "    return order.total()\n"
        "\n"
        "\n"
        "class Admin:\n"
        "    def refund(self, order):\n"
        "        order.save()\n"
    )
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "README.md").write_text("# shop\n")


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_model_queries_the_code_graph_from_the_repl(scripted_server, tmp_path: Path) -> None:
    repo = tmp_path / "shop-repo"
    make_repo(repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    head = git(repo, "rev-parse", "HEAD")

    code = (
        "classes = sorted(s.qualname for s in context.symbols(kind='class'))\n"
        "callers = sorted(s.qualname for s in context.callers('save'))\n"
        "body = context.source('Order.total')\n"
        "resolved = [i.resolved for i in context.imports('shop/api.py')]\n"
        "FINAL(f'{classes} {callers} {body.splitlines()[0].strip()} {resolved}')"
    )

    def first(messages: list[dict]) -> str:
        system = messages[0]["content"]
        assert "context.callers(name)" in system and "context.outline(path=None)" in system
        assert "code: 4 files parsed (python 3, markdown 1)" in system
        assert f"at commit {head[:12]}" in system
        return repl(code)

    server = scripted_server([first])
    ran = run_rlm("ask", str(repo), "Who saves orders?", *server.cli_args())

    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip() == "['Admin', 'Order'] ['Admin.refund', 'checkout'] def total(self): ['shop/models.py']"
    assert "code graph: 4 files (python 3, markdown 1)" in ran.stderr


def test_plain_text_gets_no_code_tools_and_a_clear_error(scripted_server, tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("INFO started\nERROR failed\n")

    def first(messages: list[dict]) -> str:
        assert "context.symbols" not in messages[0]["content"]
        return repl("context.symbols()")

    def second(messages: list[dict]) -> str:
        assert "LookupError: no code graph" in last_user_text(messages)
        return repl("FINAL('ok')")

    server = scripted_server([first, second])
    ran = run_rlm("ask", str(tmp_path / "app.log"), "q?", *server.cli_args())
    assert ran.code == 0, ran.stderr


def test_inspect_summarises_without_a_model(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)

    text = run_rlm("inspect", str(repo))
    assert text.code == 0, text.stderr
    assert "files: 4 loaded, 1 skipped" in text.stdout
    assert "skipped 1 (binary): logo.png" in text.stdout
    assert "languages: python 3, markdown 1" in text.stdout
    assert "symbols: 3 method, 2 class, 2 function" in text.stdout

    data = run_rlm("inspect", str(repo), "--json").json()
    assert data["files"] == 4 and data["skipped"] == [{"path": "logo.png", "reason": "binary"}]
    assert data["languages"]["python"] == 3
    assert data["symbols_by_kind"]["class"] == 2 and data["symbols_by_kind"]["method"] == 3
    assert data["chars"] == sum(len(p.read_text()) for p in repo.rglob("*") if p.is_file() and p.suffix != ".png")
    assert data["code"]["cache"]["hits"] == data["code"]["parsed_files"]  # the first run filled the cache

    outline = run_rlm("inspect", str(repo), "--outline")
    assert "class Order" in outline.stdout and "method refund" in outline.stdout


def test_inspect_of_a_missing_path_is_exit_3(tmp_path: Path) -> None:
    ran = run_rlm("inspect", str(tmp_path / "nope"))
    assert ran.code == 3 and ran.stderr.startswith("rlm: error: no such file or directory")
