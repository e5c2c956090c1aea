"""Which tree-sitter grammar a file is written in, from its name or its shebang line.

Names are those of tree-sitter-language-pack (``csharp``, not ``c_sharp``). A file whose language
cannot be told is indexed as text only.
"""

from __future__ import annotations

import functools
import re
import typing

from tree_sitter_language_pack import SupportedLanguage

#: Every grammar the bundled language pack can load.
KNOWN_LANGUAGES: frozenset[str] = frozenset(typing.get_args(SupportedLanguage))

_EXTENSIONS: dict[str, str] = {
    # the languages with a dedicated tags query (queries/<name>.scm)
    "py": "python", "pyi": "python", "pyw": "python",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "mts": "typescript", "cts": "typescript",
    "tsx": "tsx",
    "go": "go",
    "rs": "rust",
    "java": "java",
    "c": "c", "h": "c",
    "cc": "cpp", "cpp": "cpp", "cxx": "cpp", "c++": "cpp", "hpp": "cpp", "hh": "cpp",
    "hxx": "cpp", "h++": "cpp", "ipp": "cpp", "tpp": "cpp", "inl": "cpp",
    "cs": "csharp",
    "rb": "ruby", "rake": "ruby", "gemspec": "ruby", "ru": "ruby",
    "php": "php", "phtml": "php",
    "kt": "kotlin", "kts": "kotlin",
    "swift": "swift",
    "sh": "bash", "bash": "bash", "zsh": "bash", "ksh": "bash",
    # everything else the pack knows: generic definitions only
    "lua": "lua", "luau": "luau", "scala": "scala", "sc": "scala", "dart": "dart",
    "ex": "elixir", "exs": "elixir", "erl": "erlang", "hrl": "erlang", "hs": "haskell",
    "ml": "ocaml", "mli": "ocaml_interface", "clj": "clojure", "cljs": "clojure",
    "cljc": "clojure", "edn": "clojure", "el": "elisp", "lisp": "commonlisp", "lsp": "commonlisp",
    "scm": "scheme", "ss": "scheme", "rkt": "racket", "jl": "julia", "r": "r", "pl": "perl",
    "pm": "perl", "ps1": "powershell", "psm1": "powershell", "zig": "zig", "nim": "nim",
    "sv": "verilog", "svh": "verilog", "vhd": "vhdl", "vhdl": "vhdl", "sql": "sql",
    "html": "html", "htm": "html", "css": "css", "scss": "scss", "json": "json",
    "yaml": "yaml", "yml": "yaml", "toml": "toml", "xml": "xml", "md": "markdown",
    "markdown": "markdown", "rst": "rst", "tex": "latex", "proto": "proto", "graphql": "graphql",
    "gql": "graphql", "tf": "terraform", "hcl": "hcl", "nix": "nix", "gleam": "gleam",
    "elm": "elm", "fs": "fsharp", "fsx": "fsharp", "fsi": "fsharp_signature", "groovy": "groovy",
    "gradle": "groovy", "mm": "objc", "hx": "haxe", "d": "d", "adb": "ada", "ads": "ada",
    "f90": "fortran", "f95": "fortran", "f03": "fortran", "f08": "fortran", "pas": "pascal",
    "cob": "cobol", "cbl": "cobol", "sol": "solidity", "svelte": "svelte", "vue": "vue",
    "astro": "astro", "glsl": "glsl", "vert": "glsl", "frag": "glsl", "hlsl": "hlsl",
    "wgsl": "wgsl", "cu": "cuda", "cuh": "cuda", "ino": "arduino", "tcl": "tcl", "vim": "vim",
    "fish": "fish", "jsonnet": "jsonnet", "libsonnet": "jsonnet", "kdl": "kdl", "ron": "ron",
    "prisma": "prisma", "thrift": "thrift", "capnp": "capnp", "smali": "smali", "bib": "bibtex",
    "cmake": "cmake", "mk": "make", "ninja": "ninja", "ini": "ini", "cfg": "ini",
    "properties": "properties", "po": "po", "hack": "hack", "purs": "purescript", "odin": "odin",
    "v": "v", "wat": "wat", "wast": "wast", "typ": "typst", "bicep": "bicep", "cairo": "cairo",
    "janet": "janet", "fnl": "fennel", "pony": "pony", "rego": "rego", "hare": "hare",
    "agda": "agda", "apex": "apex", "cls": "apex", "gd": "gdscript", "ispc": "ispc",
    "magik": "magik", "matlab": "matlab", "sparql": "sparql", "star": "starlark",
    "bzl": "starlark", "twig": "twig", "mermaid": "mermaid", "mmd": "mermaid", "dtd": "dtd",
    "nqc": "nqc", "squirrel": "squirrel", "nut": "squirrel", "tablegen": "tablegen", "td": "tablegen",
    "smithy": "smithy", "ll": "llvm", "asm": "asm", "s": "asm",
}

_FILENAMES: dict[str, str] = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "cmakelists.txt": "cmake", "rakefile": "ruby", "gemfile": "ruby", "guardfile": "ruby",
    "podfile": "ruby", "vagrantfile": "ruby", "build.bazel": "starlark", "meson.build": "meson", ".bashrc": "bash", ".zshrc": "bash",
    ".profile": "bash", "pkgbuild": "bash", "go.mod": "gomod", "go.sum": "gosum",
    "requirements.txt": "requirements", ".gitignore": "gitignore",
    ".gitattributes": "gitattributes", "kconfig": "kconfig",
}

_INTERPRETERS: dict[str, str] = {
    "python": "python", "python2": "python", "python3": "python", "pypy": "python",
    "pypy3": "python", "sh": "bash", "bash": "bash", "zsh": "bash", "ksh": "bash", "dash": "bash",
    "node": "javascript", "nodejs": "javascript", "deno": "typescript", "ts-node": "typescript",
    "bun": "javascript", "ruby": "ruby", "perl": "perl", "php": "php", "lua": "lua",
    "rscript": "r", "fish": "fish", "tclsh": "tcl", "julia": "julia", "elixir": "elixir",
    "escript": "erlang", "swift": "swift", "kotlin": "kotlin", "pwsh": "powershell",
}

# A C header that declares classes or namespaces is C++; the C grammar would misread it.
_CPP_HEADER = re.compile(r"^\s*(class|namespace|template\s*<|public:|private:)", re.MULTILINE)


def language_for(path: str, text: str | None = None) -> str | None:
    """The grammar name for ``path``, or None when the language is unknown.

    The extension decides; a file without a known extension is recognised by its exact name
    (``Makefile``) or, when ``text`` is given, by a ``#!`` line naming an interpreter.
    """
    lowered = path.rsplit("/", 1)[-1].lower()
    stem, dot, ext = lowered.rpartition(".")
    language = _EXTENSIONS.get(ext) if dot and stem else None
    if language == "c" and ext == "h" and text is not None and _looks_like_cpp(text):
        language = "cpp"
    if language is None:
        language = _FILENAMES.get(lowered)
    if language is None and (ext == "dockerfile" or lowered.startswith("dockerfile")):
        language = "dockerfile"
    if language is None and text is not None and text.startswith("#!"):
        language = _language_for_shebang(text.split("\n", 1)[0])
    return language if language in KNOWN_LANGUAGES else None


def _looks_like_cpp(text: str) -> bool:
    return _CPP_HEADER.search(text[:20_000]) is not None


@functools.lru_cache(maxsize=256)
def _language_for_shebang(line: str) -> str | None:
    words = line[2:].strip().split()
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        if not rest:
            return None
        program = rest[0].rsplit("/", 1)[-1]
    program = program.lower()
    language = _INTERPRETERS.get(program)
    if language is None:
        # python3.11, ruby2.7, ...
        language = _INTERPRETERS.get(re.sub(r"[\d.]+$", "", program))
    return language
