"""The CodeIndex API over a small multi-language repository: queries, imports, graph, summary,
and the build machinery (cache, process pool, text-only fallbacks)."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlm_cli.codegraph import MODULE_SYMBOL, CodeIndex, Symbol, build_code_index
from rlm_cli.codegraph.cache import default_cache_dir

REPO: dict[str, str] = {
    "README.md": "# Demo\nsave everything\n",
    "notes.txt": "save me\n",
    "app/__init__.py": "from .models import User\n",
    "app/models.py": (
        "import os\n"
        "from . import storage, missing\n"
        "from .storage import save as store\n"
        "\n"
        "\n"
        "class User:\n"
        "    def save(self):\n"
        "        # save in a comment\n"
        "        store(self, 'save')\n"
        "        return storage.save(self)\n"
        "\n"
        "\n"
        "def save(x):\n"
        "    return x\n"
        "\n"
        "save(1)\n"
    ),
    "app/storage.py": (
        "import app.models\n"
        "from app import models\n"
        "import json\n"
        "\n"
        "def save(obj, how='save'):\n"
        "    return json.dumps(obj)\n"
    ),
    "web/main.ts": (
        "import { util } from './util';\n"
        "import x from './lib';\n"
        "import React from 'react';\n"
        "export function run() { return util(); }\n"
    ),
    "web/util.ts": "export function util() { return 1; }\n",
    "web/lib/index.js": "module.exports = {};\n",
    "go.mod": "module example.com/demo\n\ngo 1.21\n",
    "cmd/main.go": (
        'package main\n\nimport (\n\t"fmt"\n\t"example.com/demo/internal/util"\n)\n\n'
        'func main() { fmt.Println(util.Clean("x")) }\n'
    ),
    "internal/util/util.go": "package util\n\nfunc Clean(s string) string { return s }\n",
    "src/lib.rs": "mod shapes;\nuse crate::shapes::area;\n\npub fn run() -> f64 { area(1.0) }\n",
    "src/shapes.rs": "pub fn area(r: f64) -> f64 { r * r }\n",
    "native/main.c": '#include <stdio.h>\n#include "util.h"\nint main(void) { return helper(1); }\n',
    "native/util.h": "int helper(int x);\n",
    "broken.py": "def (((:\n  ))) \x00\n",
    "big.py": "x = 1\n" * 200,
}


@pytest.fixture(scope="module")
def index() -> CodeIndex:
    return build_code_index(REPO, use_cache=False, max_file_chars=1000)


def test_symbols_filters(index: CodeIndex) -> None:
    saves = index.symbols("save")
    assert [(s.qualname, s.path) for s in saves] == [
        ("User.save", "app/models.py"),
        ("save", "app/models.py"),
        ("save", "app/storage.py"),
    ]
    assert index.symbols("User.save") == [saves[0]]
    assert [s.qualname for s in index.symbols(kind="method")] == ["User.save"]
    assert [s.name for s in index.symbols(path="app")] == ["User", "save", "save", "save"]
    assert [s.name for s in index.symbols(path="app/storage.py")] == ["save"]
    assert index.symbols(path="ap") == []  # a directory prefix is whole path components
    assert index.symbols("nothing") == []


def test_symbol_fields_and_repr(index: CodeIndex) -> None:
    method = index.symbols("User.save")[0]
    assert method == Symbol(
        name="save",
        qualname="User.save",
        kind="method",
        path="app/models.py",
        line=7,
        start_line=7,
        end_line=10,
        language="python",
        signature="def save(self):",
    )
    assert repr(method) == "<method User.save app/models.py:7-10>"
    with pytest.raises(AttributeError):
        method.name = "x"  # type: ignore[misc]


def test_source(index: CodeIndex) -> None:
    assert index.source("util") == "export function util() { return 1; }\n"
    assert index.source("User.save").startswith("    def save(self):\n")
    assert index.source(index.symbols("save", path="app/storage.py")[0]) == (
        "def save(obj, how='save'):\n    return json.dumps(obj)\n"
    )


def test_callers_each_once_with_module_level(index: CodeIndex) -> None:
    callers = index.callers("save")
    assert [(s.qualname, s.path) for s in callers] == [
        ("User.save", "app/models.py"),
        (MODULE_SYMBOL, "app/models.py"),
    ]
    module = callers[1]
    assert (module.kind, module.start_line, module.end_line) == ("module", 1, 16)
    assert index.source(module) == REPO["app/models.py"]
    assert index.callers("storage.save") == index.callers("save")
    assert [s.qualname for s in index.callers("Clean")] == ["main"]
    assert index.callers("never_called") == []


def test_references_skip_strings_comments_and_text_files(index: CodeIndex) -> None:
    found = [(r.path, r.line, r.column, r.text) for r in index.references("save")]
    assert found == [
        ("app/models.py", 3, 22, "from .storage import save as store"),
        ("app/models.py", 7, 9, "def save(self):"),
        ("app/models.py", 10, 24, "return storage.save(self)"),
        ("app/models.py", 13, 5, "def save(x):"),
        ("app/models.py", 16, 1, "save(1)"),
        ("app/storage.py", 5, 5, "def save(obj, how='save'):"),
    ]
    assert [(r.path, r.line) for r in index.references("Clean")] == [
        ("cmd/main.go", 8),
        ("internal/util/util.go", 3),
    ]


def test_references_count_columns_in_characters() -> None:
    files = {"u.py": "s = 'é'; target = 1\nprint(target)\n"}
    refs = build_code_index(files, use_cache=False).references("target")
    assert [(r.line, r.column) for r in refs] == [(1, 10), (2, 7)]


def test_imports_resolved(index: CodeIndex) -> None:
    resolved = {(i.path, i.module): i.resolved for i in index.imports()}
    assert resolved == {
        ("app/__init__.py", ".models"): "app/models.py",
        ("app/models.py", "os"): None,
        ("app/models.py", "."): "app/__init__.py",
        ("app/models.py", ".storage"): "app/storage.py",
        ("app/storage.py", "app.models"): "app/models.py",
        ("app/storage.py", "app"): "app/__init__.py",
        ("app/storage.py", "json"): None,
        ("web/main.ts", "./util"): "web/util.ts",
        ("web/main.ts", "./lib"): "web/lib/index.js",
        ("web/main.ts", "react"): None,
        ("cmd/main.go", "fmt"): None,
        ("cmd/main.go", "example.com/demo/internal/util"): "internal/util",
        ("src/lib.rs", "shapes"): "src/shapes.rs",
        ("src/lib.rs", "crate::shapes::area"): "src/shapes.rs",
        ("native/main.c", "stdio.h"): None,
        ("native/main.c", "util.h"): "native/util.h",
    }
    first = index.imports("app/models.py")[1]
    assert (first.line, first.text, first.names) == (
        2,
        "from . import storage, missing",
        ("storage", "missing"),
    )


def test_outline(index: CodeIndex) -> None:
    assert index.outline("app") == (
        "app/__init__.py  python, 1 line\n"
        "app/models.py  python, 16 lines\n"
        "  class User  6-10\n"
        "    method save  7-10\n"
        "  function save  13-14\n"
        "app/storage.py  python, 6 lines\n"
        "  function save  5-6\n"
    )
    whole = index.outline()
    assert "notes.txt  text only (unknown language), 1 line\n" in whole
    assert "broken.py  text only (parse error), 2 lines\n" in whole
    assert "big.py  text only (too large), 200 lines\n" in whole


def test_graph_edges(index: CodeIndex) -> None:
    graph = index.graph
    method = index.symbols("User.save")[0]
    user = index.symbols("User")[0]
    assert graph.nodes["app/models.py"]["type"] == "file"
    assert graph.nodes[method]["kind"] == "method"
    assert graph.has_edge("app/models.py", method, key="defines")
    assert graph.has_edge(user, method, key="contains")
    assert graph.edges["app/models.py", "app/storage.py", "imports"]["lines"] == [2, 3]
    assert graph.has_edge("app/models.py", "module:os", key="imports")
    assert graph.has_edge("cmd/main.go", "internal/util/util.go", key="imports")
    # `storage.save(self)` may mean any of the three `save`: all kept, marked ambiguous
    calls = {
        (v.path, v.qualname): data
        for _, v, key, data in graph.out_edges(method, keys=True, data=True)
        if key == "calls"
    }
    assert set(calls) == {
        ("app/models.py", "User.save"),
        ("app/models.py", "save"),
        ("app/storage.py", "save"),
    }
    assert all(d["ambiguous"] and d["candidates"] == 3 and d["lines"] == [10] for d in calls.values())
    run = index.symbols("run", path="src")[0]
    area = index.symbols("area")[0]
    assert graph.edges[run, area, "calls"]["ambiguous"] is False
    # module-level calls start at the file
    assert graph.has_edge("app/models.py", index.symbols("save", path="app/storage.py")[0], key="calls")
    assert {d for _, _, d in graph.edges(data="kind")} == {"defines", "contains", "imports", "calls"}


def test_summary(index: CodeIndex) -> None:
    summary = index.summary()
    assert summary["files"] == len(REPO)
    assert summary["text_only"] == {"unknown language": 1, "parse error": 1, "too large": 1}
    assert summary["text_only_files"] == {
        "notes.txt": "unknown language",
        "broken.py": "parse error",
        "big.py": "too large",
    }
    assert summary["languages"]["python"] == 3
    assert summary["symbols_by_kind"] == {"function": 9, "class": 1, "method": 1}
    assert summary["symbols"] == 11
    json.dumps(summary)  # plain data


def test_parsed_with_errors_still_indexed() -> None:
    files = {"half.py": "def good():\n    return 1\n\ndef bad(:\n    pass\n"}
    index = build_code_index(files, use_cache=False)
    assert index.summary()["parsed_with_errors"] == 1
    assert [s.qualname for s in index.symbols()][:1] == ["good"]


def many_files(count: int, salt: str = "") -> dict[str, str]:
    return {
        f"pkg/m{i}.py": f"# {salt}\nclass C{i}:\n    def run(self):\n        return helper{i % 7}()\n"
        for i in range(count)
    }


def test_cache_second_run_parses_nothing(tmp_path: Path) -> None:
    files = many_files(60)
    cold = build_code_index(files, cache_dir=tmp_path, processes=1)
    assert (cold.stats.parsed_files, cold.stats.cached_files) == (60, 0)
    warm = build_code_index(files, cache_dir=tmp_path, processes=1)
    assert (warm.stats.parsed_files, warm.stats.cached_files) == (60 - 60, 60)
    assert warm.summary()["symbols_by_kind"] == cold.summary()["symbols_by_kind"]
    assert [s for s in warm.symbols()] == [s for s in cold.symbols()]
    changed = dict(files, **{"pkg/m3.py": "def changed():\n    pass\n"})
    again = build_code_index(changed, cache_dir=tmp_path, processes=1)
    assert (again.stats.parsed_files, again.stats.cached_files) == (1, 59)
    assert [s.qualname for s in again.symbols(path="pkg/m3.py")] == ["changed"]


def test_identical_files_share_one_entry(tmp_path: Path) -> None:
    files = {"a/__init__.py": "def f():\n    pass\n", "b/__init__.py": "def f():\n    pass\n"}
    index = build_code_index(files, cache_dir=tmp_path)
    assert index.stats.parsed_files == 2
    assert [s.path for s in index.symbols("f")] == ["a/__init__.py", "b/__init__.py"]
    assert index.stats.cache_path is not None
    with sqlite3.connect(index.stats.cache_path) as db:  # the same text is stored once
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (1,)


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RLM_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "codegraph"
    index = build_code_index({"a.py": "def f():\n    pass\n"})
    assert index.stats.cache_path is not None
    assert Path(index.stats.cache_path).parent == tmp_path / "codegraph"


def test_unusable_cache_dir_does_not_fail(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    index = build_code_index({"a.py": "def f():\n    pass\n"}, cache_dir=blocker / "cache")
    assert [s.name for s in index.symbols()] == ["f"]
    assert index.stats.cache_error is not None


def test_process_pool_gives_the_serial_result(tmp_path: Path) -> None:
    files = many_files(80, salt="pool")
    pooled = build_code_index(files, use_cache=False, processes=2)
    serial = build_code_index(files, use_cache=False, processes=1)
    assert pooled.stats.processes == 2 and serial.stats.processes == 1
    assert pooled.entries == serial.entries
    small = build_code_index(many_files(10), use_cache=False, processes=2)
    assert small.stats.processes == 1  # below the pool threshold


def test_engine_imports_neither_typer_nor_rich() -> None:
    code = (
        "import sys, rlm_cli.codegraph as c\n"
        "c.build_code_index({'a.py': 'def f(): pass'}, use_cache=False).graph\n"
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))\n"
    )
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_index_pickles_without_its_tables(index: CodeIndex) -> None:
    index.symbols()
    index.graph  # noqa: B018 - builds the cached tables
    copy = pickle.loads(pickle.dumps(index))
    assert set(vars(copy)) == {"files", "entries", "stats", "_references"}
    assert copy.symbols() == index.symbols()
    assert copy.callers("save") == index.callers("save")


def test_pool_when_other_threads_run() -> None:
    # Forking a process that runs other threads is unsafe: the pool then uses forkserver.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        files = many_files(60, salt="threads")
        pooled = build_code_index(files, use_cache=False, processes=2)
    finally:
        stop.set()
        thread.join()
    assert pooled.stats.processes == 2
    assert pooled.entries == build_code_index(files, use_cache=False, processes=1).entries


def test_corrupt_cache_is_replaced(tmp_path: Path) -> None:
    files = {"a.py": "def f():\n    pass\n"}
    first = build_code_index(files, cache_dir=tmp_path)
    assert first.stats.cache_path is not None
    Path(first.stats.cache_path).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(first.stats.cache_path + suffix).unlink(missing_ok=True)
    rebuilt = build_code_index(files, cache_dir=tmp_path)
    assert rebuilt.stats.cache_error is None and rebuilt.stats.parsed_files == 1
    assert build_code_index(files, cache_dir=tmp_path).stats.cached_files == 1
