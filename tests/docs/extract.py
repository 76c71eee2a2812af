"""Finds every shell command the documents show a reader, in the order the reader meets them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The documents a newcomer follows, in reading order (README first, then the guide, then the
# services' own READMEs).
DOCUMENTS = [
    "README.md",
    "docs/teaching-guide.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "services").glob("*/README.md")),
]

# Fenced blocks in these languages are shell; an unlabelled block is shell only when its first
# command starts like one (the guide also shows Cypher and redis-cli lines in plain blocks).
SHELL_LANGS = {"bash", "sh", "shell", "console"}
# An inline `code span` is a command when it starts with one of these words.
COMMAND_WORDS = (
    "make ",
    "make\n",
    "uv run ",
    "curl ",
    "docker ",
    "docker-compose ",
    "helm ",
    "kubectl ",
    "psql ",
    "redis-cli",
    "redis-benchmark ",
    "set -a",
    ".venv/bin/",
    "kcat ",
    "campus ",
)

_FENCE = re.compile(r"^```(\w*)\s*$")
_INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Command:
    """One command as the reader sees it: a whole fenced shell block, or one inline span."""

    document: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def is_command(text: str) -> bool:
    """Whether an inline code span is a command a reader would type (not a name or a path)."""
    return text.startswith(COMMAND_WORDS) or text == "make"


def extract(document: str, text: str) -> list[Command]:
    """Every shell block and inline command of one Markdown text, in order."""
    found: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if m:
            lang, start, body = m.group(1), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            block = "\n".join(body).strip()
            first = next((b.strip() for b in body if b.strip()), "")
            if block and (lang in SHELL_LANGS or (lang == "" and is_command(first))):
                found.append(Command(document, start + 1, block))
        else:
            for span in _INLINE.findall(lines[i]):
                if is_command(span):
                    found.append(Command(document, i + 1, span.strip()))
        i += 1
    return found


def all_commands() -> list[Command]:
    """Every command of every document, README first."""
    out: list[Command] = []
    for doc in DOCUMENTS:
        out += extract(doc, (ROOT / doc).read_text())
    return out
