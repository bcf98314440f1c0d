"""Where an SAE comes from, parsed from the command line without torch or sae-lens (the CLI checks its arguments
before any heavy import)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SAESpec:
    """Where an SAE comes from. `key` is the short id used in URLs and tables."""

    key: str
    path: Path | None = None  # local sae-lens folder
    release: str | None = None  # sae-lens release, e.g. "gpt2-small-res-jb"
    sae_id: str | None = None  # id within the release, e.g. "blocks.8.hook_resid_pre"

    @property
    def source(self) -> str:
        return "local" if self.path is not None else "release"

    @classmethod
    def parse(cls, text: str) -> "SAESpec":
        """`path/to/folder`, or `release:sae_id`; an optional `key=` prefix names it."""
        key = None
        if "=" in text.split(":", 1)[0]:
            key, text = text.split("=", 1)
        if key is not None and not VALID_KEY.fullmatch(key):
            raise ValueError(f"SAE key {key!r} (before '='): use lower-case letters, digits, '-' and '.'")
        if text and Path(text).exists():
            path = Path(text)
            return cls(key=key or checked_key(sae_key_from(path.name), text), path=path)
        release, _, sae_id = text.partition(":")
        if not release or not sae_id:
            raise ValueError(f"--sae {text!r} is neither an existing SAE folder nor 'release:sae_id'")
        return cls(key=key or checked_key(sae_key_from(f"{release}-{sae_id}"), text), release=release, sae_id=sae_id)

    def describe(self) -> str:
        """The spec as the command line gives it (what a build's work file records)."""
        where = str(self.path.resolve()) if self.path is not None else f"{self.release}:{self.sae_id}"
        return f"{self.key}={where}"


VALID_KEY = re.compile(r"[a-z0-9.-]+")


def checked_key(key: str, text: str) -> str:
    if not key:
        raise ValueError(f"--sae {text!r} gives no usable key: name it with KEY=... (lower-case letters, digits, '-', '.')")
    return key


def sae_key_from(text: str) -> str:
    """URL-safe key: lower-case letters, digits, '-' and '.'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


