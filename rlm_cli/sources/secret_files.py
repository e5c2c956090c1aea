"""Files that are secrets by their name: key files, credential stores, `.env` files.

The loader skips them when it walks a directory ("secret file by name" in the skipped-files
line); naming one on the command line, or matching it with `--include`, loads it (and redaction
still replaces what it can find inside). Public halves of key pairs (`id_rsa.pub`) and committed
templates (`.env.example`) are not secrets and load as usual.
"""

from __future__ import annotations

import fnmatch
import re

__all__ = ["SECRET_FILE", "is_secret_file"]

SECRET_FILE = "secret file by name"

_NAMES = (
    # environment files
    ".env", ".env.*", "*.env", ".envrc",
    # private keys and key stores
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.ppk",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    # credential files of tools and clouds
    "credentials*.json", "client_secret*.json", "service-account*.json",
    ".netrc", "_netrc", ".npmrc", ".pypirc", ".git-credentials", ".pgpass", ".htpasswd", ".dockercfg",
)
_PATHS = (".aws/credentials", ".docker/config.json", ".kube/config")
_NOT_SECRET = ("*.pub", ".env.example", ".env.sample", ".env.template", ".env.dist", "*.env.example")

_NAME = re.compile("|".join(fnmatch.translate(pattern) for pattern in _NAMES), re.IGNORECASE)
_EXEMPT = re.compile("|".join(fnmatch.translate(pattern) for pattern in _NOT_SECRET), re.IGNORECASE)


def is_secret_file(rel: str) -> bool:
    """True for a path (relative, '/' separators) whose name says it holds secrets."""
    name = rel.rsplit("/", 1)[-1]
    if _EXEMPT.match(name):
        return False
    return bool(_NAME.match(name)) or rel.lower().endswith(_PATHS)
