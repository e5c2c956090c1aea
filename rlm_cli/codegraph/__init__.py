"""The code graph: definitions, calls, references and imports of a repository, from tree-sitter.

    index = build_code_index({"app.py": text, ...})
    index.symbols("save", kind="method")      index.callers("save")
    index.source("User.save")                 index.references("User")
    index.imports("app.py")                   index.outline("app/")
    index.graph                               index.summary()

Modules: ``languages`` (file -> grammar), ``queries`` (the ``.scm`` tags queries), ``parse``
(one file -> ``FileIndex``, pure), ``cache`` (parse results on disk), ``build`` (cache + process
pool -> ``CodeIndex``), ``index`` (the questions), ``imports``, ``references``, ``outline``,
``graph`` (networkx). None of them imports Typer or Rich.
"""

from __future__ import annotations

from rlm_cli.codegraph.build import build_code_index
from rlm_cli.codegraph.index import MODULE_SYMBOL, CodeIndex
from rlm_cli.codegraph.languages import language_for
from rlm_cli.codegraph.model import FileIndex, Import, Reference, Symbol
from rlm_cli.codegraph.parse import parse_file, parse_source
from rlm_cli.codegraph.queries import QUERY_LANGUAGES

__all__ = [
    "MODULE_SYMBOL",
    "QUERY_LANGUAGES",
    "CodeIndex",
    "FileIndex",
    "Import",
    "Reference",
    "Symbol",
    "build_code_index",
    "language_for",
    "parse_file",
    "parse_source",
]
