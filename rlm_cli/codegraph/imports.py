"""Resolve import statements to files of the repository, where that is straightforward.

Resolution needs every path of the repository (and Go's ``go.mod``), so it runs after parsing,
in the process that holds the whole index. What is resolved:

- Python: ``import a.b`` and ``from a.b import c`` by module name, the package roots being found
  from ``__init__.py`` files; relative imports from the importing file's package; ``from P
  import m`` also yields ``P.m`` when ``m`` is a module file.
- JavaScript/TypeScript: relative specifiers (``./x``) to ``x.ts``, ``x.tsx``, ``x.js``, ...,
  or ``x/index.*``.
- Go: import paths under a ``go.mod`` module of the repository, to the package directory.
- Rust: ``mod x;`` and ``use crate::/self::/super::`` paths, to ``x.rs`` or ``x/mod.rs``.
- C/C++: ``#include "x.h"`` next to the including file, from the root, or a unique path ending
  in ``x.h``; ``<x.h>`` only by a unique path ending.
- Java/Kotlin/PHP: the file whose path ends with the dotted (backslashed) name.
- Ruby ``require_relative``/``require``, PHP ``require``/``include``, Bash ``source``: by path.

Anything else keeps ``resolved = None``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from functools import cached_property

from rlm_cli.codegraph.model import Import, ImportRow

_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".json")
_JS_LANGUAGES = frozenset({"javascript", "typescript", "tsx"})
_GO_MODULE = re.compile(r"^\s*module\s+(\S+)", re.MULTILINE)


class Resolver:
    """Finds the repository file an import names; built once per index, lazily."""

    def __init__(self, paths: Iterable[str], texts: Mapping[str, str]) -> None:
        self.paths: frozenset[str] = frozenset(paths)
        self._texts = texts

    # -- lookup tables, built on first use -----------------------------------------------

    @cached_property
    def _directories(self) -> frozenset[str]:
        found: set[str] = set()
        for path in self.paths:
            directory = posixpath.dirname(path)
            while directory and directory not in found:
                found.add(directory)
                directory = posixpath.dirname(directory)
        return frozenset(found)

    @cached_property
    def _by_basename(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {}
        for path in sorted(self.paths):
            table.setdefault(posixpath.basename(path), []).append(path)
        return table

    @cached_property
    def _python_modules(self) -> dict[str, str]:
        """Dotted module name -> file, the package root of each file found by ``__init__.py``."""
        table: dict[str, str] = {}
        for path in sorted(self.paths, key=lambda p: (p.count("/"), p)):
            if not path.endswith((".py", ".pyi")):
                continue
            parts = path[: path.rindex(".")].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            # climb while the directory above is a package
            depth = len(path.split("/")) - 1
            top = depth
            while top > 0 and "/".join(path.split("/")[: top]) + "/__init__.py" in self.paths:
                top -= 1
            name = ".".join(parts[top:])
            if name:
                table.setdefault(name, path)
        return table

    @cached_property
    def _go_modules(self) -> list[tuple[str, str]]:
        """(module path, directory) of every go.mod, longest module path first."""
        found = []
        for path in self.paths:
            if posixpath.basename(path) == "go.mod":
                match = _GO_MODULE.search(self._texts.get(path, ""))
                if match:
                    found.append((match.group(1), posixpath.dirname(path)))
        return sorted(found, key=lambda item: -len(item[0]))

    # -- resolution ----------------------------------------------------------------------

    def resolve(self, path: str, language: str, rows: Iterable[ImportRow]) -> list[Import]:
        """The ``Import`` records of one file's import rows."""
        result: list[Import] = []
        for line, text, modules, names in rows:
            if not modules:
                # `from __future__ import x`: the grammar has no node for the module name
                words = text.split()
                module = words[1] if len(words) > 1 and words[0] == "from" else ""
                result.append(Import(path, line, text, module, names, None))
                continue
            for module in modules:
                if language == "python":
                    result.extend(self._python(path, line, text, module, names))
                else:
                    target = self._resolve_one(path, language, module, text)
                    result.append(Import(path, line, text, module, names, target))
        return result

    def _resolve_one(self, path: str, language: str, module: str, text: str) -> str | None:
        if language in _JS_LANGUAGES:
            return self._javascript(path, module)
        if language == "go":
            return self._go(module)
        if language == "rust":
            return self._rust(path, module, text)
        if language in ("c", "cpp"):
            return self._include(path, module, system="<" in text.split(module)[0])
        if language in ("java", "kotlin"):
            extension = ".java" if language == "java" else ".kt"
            dotted = module.removesuffix(".*")
            return self._suffix(dotted.replace(".", "/") + extension) or self._suffix(
                dotted.rpartition(".")[0].replace(".", "/") + extension
            )
        if language == "php":
            if text.startswith(("require", "include")):
                return self._relative_or_root(path, module)
            return self._php_namespace(module)
        if language == "ruby":
            if text.startswith("require_relative"):
                return self._first(_with_extension(_join(posixpath.dirname(path), module), ".rb"))
            return self._first(
                _with_extension(module, ".rb") + _with_extension("lib/" + module, ".rb")
            )
        if language == "bash":
            return self._relative_or_root(path, module)
        return None

    def _first(self, candidates: Iterable[str | None]) -> str | None:
        for candidate in candidates:
            if candidate is not None and candidate in self.paths:
                return candidate
        return None

    def _suffix(self, tail: str) -> str | None:
        """The one repository file whose path ends with ``tail`` (None if none or several)."""
        if tail in self.paths:
            return tail
        matches = [
            p for p in self._by_basename.get(posixpath.basename(tail), ()) if p.endswith("/" + tail)
        ]
        return matches[0] if len(matches) == 1 else None

    def _relative_or_root(self, path: str, module: str) -> str | None:
        return self._first([_join(posixpath.dirname(path), module), _join("", module)])

    # Python -------------------------------------------------------------------------------

    def _python(
        self, path: str, line: int, text: str, module: str, names: tuple[str, ...]
    ) -> list[Import]:
        target = self._python_module(path, module)
        records = [Import(path, line, text, module, names, target)]
        # `from P import m` imports the module P.m when there is such a file.
        separator = "" if module.endswith(".") else "."
        for name in names:
            submodule = module + separator + name
            found = self._python_module(path, submodule)
            if found is not None and found != target:
                records.append(Import(path, line, text, submodule, (), found))
        return records

    def _python_module(self, path: str, module: str) -> str | None:
        dots = len(module) - len(module.lstrip("."))
        rest = module[dots:]
        if dots:
            base = posixpath.dirname(path)
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            stem = _join(base, rest.replace(".", "/")) if rest else base
            if stem is None:
                return None
            files = [_join(stem, "__init__.py"), _join(stem, "__init__.pyi")]
            return self._first(([stem + ".py", stem + ".pyi"] if stem else []) + files)
        table = self._python_modules
        found = table.get(rest)
        if found is None and "__init__.py" in self.paths and "." in rest:
            # The repository root is itself a package whose name the paths do not carry.
            found = table.get(rest.split(".", 1)[1])
        return found

    # JavaScript / TypeScript ---------------------------------------------------------------

    def _javascript(self, path: str, module: str) -> str | None:
        if not module.startswith("."):
            return None
        stem = _join(posixpath.dirname(path), module)
        if stem is None:
            return None
        candidates = [stem] + [stem + ext for ext in _JS_EXTENSIONS]
        # `./x.js` written for a TypeScript source `x.ts`
        root, ext = posixpath.splitext(stem)
        if ext in (".js", ".jsx", ".mjs", ".cjs"):
            candidates += [root + ".ts", root + ".tsx"]
        candidates += [stem + "/index" + ext for ext in _JS_EXTENSIONS]
        return self._first(candidates)

    # Go ------------------------------------------------------------------------------------

    def _go(self, module: str) -> str | None:
        for module_path, directory in self._go_modules:
            if module == module_path or module.startswith(module_path + "/"):
                relative = module[len(module_path) :].lstrip("/")
                target = _join(directory, relative) if relative else directory
                if target is not None and (target in self._directories or target == ""):
                    return target
        return None

    # Rust ----------------------------------------------------------------------------------

    def _rust(self, path: str, module: str, text: str) -> str | None:
        directory = posixpath.dirname(path)
        stem = posixpath.splitext(posixpath.basename(path))[0]
        module_dir = directory if stem in ("mod", "lib", "main") else _join(directory, stem)
        if text.lstrip().startswith(("mod ", "pub mod ", "pub(crate) mod ")):
            return self._first(_rust_files(module_dir, [module]))
        parts = [p for p in re.sub(r"\{.*", "", module).split("::") if p and p != "*"]
        if not parts:
            return None
        base: str | None
        if parts[0] == "crate":
            base = self._crate_root(directory)
            parts = parts[1:]
        elif parts[0] in ("self", "super"):
            base = module_dir
            while parts and parts[0] in ("self", "super"):
                if parts.pop(0) == "super":
                    base = posixpath.dirname(base or "")
        else:
            return None
        # `use crate::a::b::Item`: the longest prefix that is a module file
        for end in range(len(parts), 0, -1):
            found = self._first(_rust_files(base, parts[:end]))
            if found is not None:
                return found
        return None

    def _crate_root(self, directory: str) -> str:
        current: str | None = directory
        while current is not None:
            for root_file in ("lib.rs", "main.rs"):
                if _join(current, root_file) in self.paths:
                    return current
            current = posixpath.dirname(current) if current else None
        return directory

    # C / C++ -------------------------------------------------------------------------------

    def _include(self, path: str, module: str, *, system: bool) -> str | None:
        if not system:
            found = self._relative_or_root(path, module)
            if found is not None:
                return found
        return self._suffix(module)

    # PHP -----------------------------------------------------------------------------------

    def _php_namespace(self, module: str) -> str | None:
        parts = module.strip("\\").split("\\")
        # PSR-4 maps a namespace prefix to a directory: try dropping leading parts
        for start in range(len(parts) - 1):
            found = self._suffix("/".join(parts[start:]) + ".php")
            if found is not None:
                return found
        return None


def _join(directory: str, relative: str) -> str | None:
    """``directory/relative`` normalised; None if it climbs above the repository root."""
    joined = posixpath.normpath(posixpath.join(directory, relative)) if directory else (
        posixpath.normpath(relative)
    )
    if joined.startswith("..") or joined.startswith("/"):
        return None
    return "" if joined == "." else joined


def _with_extension(path: str | None, extension: str) -> list[str | None]:
    if path is None:
        return []
    return [path] if path.endswith(extension) else [path + extension, path]


def _rust_files(base: str | None, parts: list[str]) -> list[str | None]:
    if base is None:
        return []
    stem = _join(base, "/".join(parts))
    if stem is None:
        return []
    return [stem + ".rs", _join(stem, "mod.rs")]
