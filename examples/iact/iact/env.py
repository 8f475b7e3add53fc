"""The process environment plus the release's .env file, and DATABASE_URL parsing.

The deploy writes `.env` into the release folder as shell assignments, one per line, each value
single-quoted (`KEY='it'\\''s'`), so that bash can source it too. This reads the same file with
POSIX shell quoting rules (no `$` expansion; `#` at the start of a word begins a comment). A
variable already set in the process environment wins over the file.
"""
import os
import shlex
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value pairs of a shell-style env file; {} when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    values: dict[str, str] = {}
    for word in lexer:
        if word == "export":
            continue
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{path}: not a KEY=value assignment: {word[:40]!r}")
        values[key] = value
    return values


class Env:
    """Looks a name up in os.environ first, then in the env file."""

    def __init__(self, env_file: Path):
        self.file_values = read_env_file(env_file)

    def get(self, name: str, default: str | None = None) -> str | None:
        value = os.environ.get(name)
        if value is None:
            value = self.file_values.get(name)
        return default if value in (None, "") else value

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        return value.strip().lower() in ("1", "true", "yes", "on")

    def list(self, name: str, default: str) -> list[str]:
        return [item.strip() for item in (self.get(name) or default).split(",") if item.strip()]


def parse_database_url(url: str) -> dict:
    """postgres://user:password@host:port/name?sslmode=require → a Django DATABASES entry.

    User and password may be percent-encoded; query parameters become connection OPTIONS
    (libpq names: sslmode, connect_timeout, ...). A missing host means the local socket.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ValueError(f"DATABASE_URL: unsupported scheme {parts.scheme!r} (want postgres://)")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ValueError("DATABASE_URL: no database name in the path")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": unquote(parts.hostname or ""),
        "PORT": str(parts.port or ""),
        "OPTIONS": dict(parse_qsl(parts.query)),
    }
