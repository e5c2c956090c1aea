"""Definitions and calls in the languages other than Python, on small fixture files.

Each fixture under tests/fixtures/codegraph/ is checked exactly: every symbol's qualname, kind,
name line and line span, and every call's name, line and caller.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tree_sitter import Query
from tree_sitter_language_pack import get_language

from rlm_cli.codegraph import QUERY_LANGUAGES, FileIndex, language_for, parse_file
from rlm_cli.codegraph.model import STATUS_OK
from rlm_cli.codegraph.queries import query_text

FIXTURES = Path(__file__).parent / "fixtures" / "codegraph"

# file -> [(qualname, kind, line, start_line, end_line)]
SYMBOLS: dict[str, list[tuple[str, str, int, int, int]]] = {
    "sample.js": [
        ("Shape", "class", 4, 4, 16),
        ("Shape.constructor", "method", 5, 5, 7),
        ("Shape.area", "method", 9, 9, 11),
        ("Shape.create", "method", 13, 13, 15),
        ("topLevel", "function", 18, 18, 23),
        ("topLevel.inner", "function", 19, 19, 21),
        ("arrow", "function", 25, 25, 25),
        ("main", "function", 27, 27, 30),
    ],
    "sample.ts": [
        ("Named", "interface", 4, 4, 7),
        ("Named.greet", "method", 6, 6, 6),
        ("Id", "type", 9, 9, 9),
        ("Color", "enum", 11, 11, 14),
        ("Person", "class", 17, 16, 29),  # the decorator line starts it
        ("Person.constructor", "method", 20, 20, 23),
        ("Person.greet", "method", 26, 25, 28),
        ("format", "function", 31, 31, 33),
        ("Utils", "module", 35, 35, 39),
        ("Utils.id", "function", 36, 36, 38),
        ("Animal", "class", 41, 41, 43),
        ("Animal.speak", "method", 42, 42, 42),
    ],
    "sample.tsx": [
        ("Props", "interface", 4, 4, 6),
        ("Header", "function", 8, 8, 10),
        ("Footer", "function", 12, 12, 14),
        ("Page", "class", 16, 16, 20),
        ("Page.render", "method", 17, 17, 19),
    ],
    "sample.go": [
        ("MaxConns", "constant", 8, 8, 8),
        ("Server", "struct", 10, 10, 12),
        ("Handler", "interface", 14, 14, 16),
        ("Handler.Handle", "method", 15, 15, 15),
        ("ID", "type", 18, 18, 18),
        ("NewServer", "function", 20, 20, 22),
        ("Server.Start", "method", 24, 24, 27),  # qualified by its receiver
        ("Server.listen", "method", 29, 29, 31),
    ],
    "sample.rs": [
        ("LIMIT", "constant", 6, 6, 6),
        ("Point", "struct", 9, 8, 12),  # the #[derive] attribute starts it
        ("Shape", "enum", 14, 14, 17),
        ("Area", "trait", 19, 19, 21),
        ("Area.area", "method", 20, 20, 20),
        ("Point.new", "method", 24, 24, 26),  # impl Point
        ("Point.norm", "method", 28, 28, 30),
        ("Shape.area", "method", 34, 34, 39),  # impl Area for Shape
        ("Map", "type", 42, 42, 42),
        ("main", "function", 44, 44, 47),
        ("square", "macro", 49, 49, 53),
    ],
    "Sample.java": [
        ("Sample", "class", 6, 6, 29),
        ("Sample.Sample", "method", 9, 9, 11),
        ("Sample.toString", "method", 14, 13, 16),
        ("Sample.Inner", "class", 18, 18, 22),
        ("Sample.Inner.run", "method", 19, 19, 21),
        ("Sample.Listener", "interface", 24, 24, 26),
        ("Sample.Listener.onEvent", "method", 25, 25, 25),
        ("Sample.Mode", "enum", 28, 28, 28),
    ],
    "sample.c": [
        ("MAX", "macro", 4, 4, 4),
        ("point", "struct", 6, 6, 9),
        ("point_t", "type", 11, 11, 11),
        ("color", "enum", 13, 13, 13),
        ("add", "function", 15, 15, 18),
        ("main", "function", 20, 20, 24),
    ],
    "sample.cpp": [
        ("geo", "module", 4, 4, 20),
        ("geo.Shape", "class", 6, 6, 10),
        ("geo.Shape.area", "method", 8, 8, 8),
        ("geo.Shape.describe", "method", 9, 9, 9),
        ("geo.Point", "struct", 12, 12, 14),
        ("geo.Shape.scale", "method", 16, 16, 18),  # Shape::scale defined outside the class
        ("main", "function", 22, 22, 25),
    ],
    "sample.cs": [
        ("App.Models", "module", 4, 4, 34),
        ("App.Models.IShape", "interface", 6, 6, 9),
        ("App.Models.IShape.Area", "method", 8, 8, 8),
        ("App.Models.Circle", "class", 11, 11, 26),
        ("App.Models.Circle.Circle", "method", 15, 15, 18),
        ("App.Models.Circle.Area", "method", 20, 20, 23),
        ("App.Models.Circle.Square", "method", 25, 25, 25),
        ("App.Models.Vec", "struct", 28, 28, 31),
        ("App.Models.Kind", "enum", 33, 33, 33),
    ],
    "sample.rb": [
        ("Shapes", "module", 4, 4, 18),
        ("Shapes.Circle", "class", 5, 5, 17),
        ("Shapes.Circle.initialize", "method", 6, 6, 8),
        ("Shapes.Circle.area", "method", 10, 10, 12),
        ("Shapes.Circle.unit", "method", 14, 14, 16),
        ("top_level", "function", 20, 20, 22),
    ],
    "sample.php": [
        ("Shape", "interface", 7, 7, 9),
        ("Shape.area", "method", 8, 8, 8),
        ("Loggable", "trait", 11, 11, 15),
        ("Loggable.log", "method", 12, 12, 14),
        ("Circle", "class", 17, 17, 25),
        ("Circle.__construct", "method", 20, 20, 20),
        ("Circle.area", "method", 22, 22, 24),
        ("make_circle", "function", 27, 27, 31),
    ],
    "sample.kt": [
        ("Shape", "interface", 6, 6, 8),
        ("Shape.area", "method", 7, 7, 7),
        ("Circle", "class", 10, 10, 18),
        ("Circle.area", "method", 11, 11, 13),
        ("Circle.unit", "method", 16, 16, 16),  # in the companion object
        ("Registry", "class", 20, 20, 24),
        ("Registry.register", "method", 21, 21, 23),
        ("Color", "enum", 26, 26, 26),
        ("square", "function", 28, 28, 28),
    ],
    "sample.swift": [
        ("Shape", "interface", 3, 3, 5),
        ("Shape.area", "method", 4, 4, 4),
        ("Circle", "struct", 7, 7, 13),
        ("Circle.area", "method", 10, 10, 12),
        ("Registry", "class", 15, 15, 23),
        ("Registry.init", "method", 18, 18, 18),
        ("Registry.register", "method", 20, 20, 22),
        ("Color", "enum", 25, 25, 27),
        ("Circle.scaled", "method", 30, 30, 32),  # extension Circle
        ("square", "function", 35, 35, 37),
    ],
    "sample.sh": [
        ("greet", "function", 4, 4, 6),
        ("main", "function", 8, 8, 11),
    ],
}

# file -> [(called name, line, caller qualname or <module>)]
CALLS: dict[str, list[tuple[str, int, str]]] = {
    "sample.js": [
        ("require", 2, "<module>"),
        ("helper", 10, "Shape.area"),
        ("Shape", 14, "Shape.create"),
        ("compute", 20, "topLevel.inner"),
        ("inner", 22, "topLevel"),
        ("topLevel", 25, "arrow"),
        ("create", 28, "main"),
        ("area", 29, "main"),
    ],
    "sample.ts": [("format", 27, "Person.greet"), ("trim", 32, "format")],
    "sample.go": [
        ("Clean", 21, "NewServer"),
        ("Println", 25, "Server.Start"),
        ("listen", 26, "Server.Start"),
    ],
    "sample.rs": [("helper", 29, "Point.norm"), ("new", 45, "main"), ("println", 46, "main")],
    "Sample.java": [("format", 15, "Sample.toString"), ("helper", 20, "Sample.Inner.run")],
    "sample.c": [("add", 21, "main"), ("printf", 22, "main"), ("helper", 23, "main")],
    "sample.cpp": [
        ("log", 9, "geo.Shape.describe"),
        ("area", 9, "geo.Shape.describe"),
        ("area", 17, "geo.Shape.scale"),
        ("helper", 24, "main"),
    ],
    "sample.php": [
        ("square", 23, "Circle.area"),
        ("pi", 23, "Circle.area"),
        ("Circle", 28, "make_circle"),
        ("log", 29, "make_circle"),
    ],
    "sample.swift": [
        ("square", 11, "Circle.area"),
        ("append", 21, "Registry.register"),
        ("Circle", 31, "Circle.scaled"),
    ],
    "sample.sh": [
        ("source", 2, "<module>"),
        ("echo", 5, "greet"),
        ("greet", 9, "main"),
        ("cleanup", 10, "main"),
        ("main", 13, "<module>"),
    ],
}


def parse_fixture(name: str) -> FileIndex:
    path = FIXTURES / name
    return parse_file(name, path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(SYMBOLS))
def test_fixture_symbols(name: str) -> None:
    entry = parse_fixture(name)
    assert entry.status == STATUS_OK
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in entry.symbols] == SYMBOLS[name]
    for row in entry.symbols:  # the name is the last part of the qualname
        assert row[1].endswith(row[0])


@pytest.mark.parametrize("name", sorted(CALLS))
def test_fixture_calls(name: str) -> None:
    entry = parse_fixture(name)
    qualnames = [row[1] for row in entry.symbols]
    got = [(c[0], c[1], qualnames[c[3]] if c[3] >= 0 else "<module>") for c in entry.calls]
    assert got == CALLS[name]


def test_every_main_language_has_a_compiling_query() -> None:
    covered = {language_for(name) for name in SYMBOLS}
    assert covered == set(QUERY_LANGUAGES) - {"python"}
    for language in QUERY_LANGUAGES:
        text = query_text(language)
        assert text is not None and "@definition." in text
        Query(get_language(language), text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "a.lua",
            "local function helper(x)\n  print(x)\nend\n",
            [("helper", "function", 1, 1, 3)],
        ),
        (
            "a.scala",
            "object Main {\n  class Box {\n    def get(): Int = 1\n  }\n}\n",
            [("Main", "class", 1, 1, 5), ("Main.Box", "class", 2, 2, 4), ("Main.Box.get", "method", 3, 3, 3)],
        ),
        (
            "a.dart",
            "class Point {\n  int dist() { return 1; }\n}\n",
            [("Point", "class", 1, 1, 3), ("Point.dist", "method", 2, 2, 2)],
        ),
    ],
)
def test_generic_fallback_finds_definitions(
    name: str, text: str, expected: list[tuple[str, str, int, int, int]]
) -> None:
    entry = parse_file(name, text)
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in entry.symbols] == expected


@pytest.mark.parametrize(
    ("path", "text", "language"),
    [
        ("src/app.py", None, "python"),
        ("web/x.tsx", None, "tsx"),
        ("lib/x.h", "int f(void);\n", "c"),
        ("lib/x.h", "namespace a { class B {}; }\n", "cpp"),
        ("bin/tool", "#!/usr/bin/env python3\nprint(1)\n", "python"),
        ("bin/run", "#!/bin/sh -e\necho hi\n", "bash"),
        ("Makefile", None, "make"),
        ("Dockerfile", None, "dockerfile"),
        ("notes.txt", None, None),
        ("LICENSE", "MIT License\n", None),
    ],
)
def test_language_detection(path: str, text: str | None, language: str | None) -> None:
    assert language_for(path, text) == language


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.js", "class A {\n  handle = (e) => {\n    go(e);\n  };\n}\n"),
        ("a.ts", "class A {\n  handle = (e: Event) => {\n    go(e);\n  };\n}\n"),
    ],
)
def test_class_fields_holding_functions_are_methods(name: str, text: str) -> None:
    entry = parse_file(name, text)
    assert [(r[1], r[2], r[4], r[5]) for r in entry.symbols] == [
        ("A", "class", 1, 5),
        ("A.handle", "method", 2, 4),
    ]
    assert [(c[0], entry.symbols[c[3]][1]) for c in entry.calls] == [("go", "A.handle")]
