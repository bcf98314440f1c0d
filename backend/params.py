"""Validation of URL query parameters. Every failure is a `ParamError` with a message for the
person who opened the link; nothing here raises anything else on bad input."""

from __future__ import annotations

import re

MAX_TEXT_PARAM = 100
SORTS = {
    "density_desc": "density (high to low)",
    "density_asc": "density (low to high)",
    "max_act_desc": "max activation",
    "latent": "latent id",
    "enc_dec": "encoder–decoder divergence (probe-free absorption suspect)",
    "parent": "denser-parent cosine (probe-free absorption suspect)",
}
SEARCH_IN = {"contexts": "top contexts", "logits": "top logits"}


class ParamError(ValueError):
    pass


def shown(value: str) -> str:
    """The offending value, shortened and stripped of control characters, for messages."""
    clean = re.sub(r"[\x00-\x1f\x7f]", "?", value)
    return clean if len(clean) <= 40 else clean[:40] + "…"


def parse_sae_key(value: str | None, known: list[str], default: str | None = None) -> str:
    """`?sae=`: a known key; absent or blank, `default` (the database's default SAE), else the first."""
    if value is None or value == "":
        if not known:
            raise ParamError("The database holds no SAEs.")
        return default if default in known else known[0]
    if value not in known:
        raise ParamError(f"Unknown SAE `{shown(value)}`. Known SAEs: {', '.join(known)}.")
    return value


MAX_SAES_PARAM = 2000


def parse_sae_keys(value: str | None, known: list[str], default: list[str] | None = None) -> list[str]:
    """`?saes=a,b`: the SAEs to compare, in database order; `default` (every SAE when None) when absent or blank."""
    if value is None or value.strip() == "":
        if not known:
            raise ParamError("The database holds no SAEs.")
        return list(known) if default is None else [key for key in known if key in set(default)]
    if len(value) > MAX_SAES_PARAM:
        raise ParamError(f"`saes` is longer than {MAX_SAES_PARAM} characters.")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ParamError("`saes` contains control characters.")
    items = [item.strip() for item in value.split(",")]
    if "" in items:
        raise ParamError(f"`saes` must be SAE keys separated by single commas, e.g. `?saes=a,b`; "
                         f"got `{shown(value)}`, which has an empty entry.")
    unknown = [item for item in dict.fromkeys(items) if item not in known]
    if unknown:
        named = ", ".join(f"`{shown(item)}`" for item in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise ParamError(f"Unknown SAE{'s' if len(unknown) > 1 else ''} {named} in `saes`. "
                         f"Known SAEs: {', '.join(known)}.")
    chosen = set(items)
    return [key for key in known if key in chosen]


def parse_latent(value: str | None, d_sae: int) -> int | None:
    """None when absent; otherwise an int in [0, d_sae)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise ParamError(f"`latent` must be a whole number from 0 to {d_sae - 1}; got `{shown(value)}`.")
    latent = int(text)
    if latent >= d_sae:
        raise ParamError(f"Latent {latent} is out of range: this SAE has latents 0 to {d_sae - 1}.")
    return latent


def parse_choice(value: str | None, choices: dict[str, str], name: str, default: str) -> str:
    if value is None or value == "":
        return default
    if value not in choices:
        raise ParamError(f"`{name}` must be one of {', '.join(choices)}; got `{shown(value)}`.")
    return value


def parse_page(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not re.fullmatch(r"[0-9]{1,6}", value.strip()):
        raise ParamError(f"`page` must be a whole number ≥ 0; got `{shown(value)}`.")
    return int(value)


def parse_text(value: str | None, name: str) -> str:
    if value is None:
        return ""
    if len(value) > MAX_TEXT_PARAM:
        raise ParamError(f"`{name}` is longer than {MAX_TEXT_PARAM} characters.")
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value):
        raise ParamError(f"`{name}` contains control characters.")
    return value


LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_WORD = 64


def parse_letter(value: str | None, default: str | None = None) -> str:
    """One letter a–z, case-insensitive, returned lower-case; `default` when absent (else an error)."""
    if value is None or value.strip() == "":
        if default is None:
            raise ParamError("`letter` is missing: give one letter from a to z, e.g. `?letter=s`.")
        return default
    text = value.strip().lower()
    if len(text) != 1 or text not in LETTERS:
        raise ParamError(f"`letter` must be a single letter from a to z; got `{shown(value)}`.")
    return text


MAX_TASK = 64


def parse_task(value: str | None, known: list[str], default: str = "first_letter") -> str:
    """`?task=`: one of the tasks of the database (`known`), case and surrounding spaces ignored; `default` when
    absent or blank (the first known task when the database lacks `default`)."""
    if value is None or value.strip() == "":
        if default in known or not known:
            return default
        return known[0]
    text = value.strip().lower()
    if text not in known:
        if not known:
            raise ParamError(f"Unknown task `{shown(value)}`: this database holds no absorption tasks.")
        raise ParamError(f"Unknown task `{shown(value)}`. Tasks in this database: {', '.join(known)}.")
    return text


def parse_class(value: str | None, classes: list[str] | tuple[str, ...], task: str, default: str | None = None,
                name: str = "class") -> str:
    """`?class=` (or `?letter=`): one of the task's classes, case and surrounding spaces ignored (classes are stored
    lower-case: letters, WordNet names); `default` when absent or blank (else an error)."""
    classes = list(classes)
    if value is None or value.strip() == "":
        if default is None:
            example = classes[0] if classes else "…"
            raise ParamError(f"`{name}` is missing: give one class of task {task}, e.g. `?{name}={example}`.")
        return default
    text = value.strip().lower()
    if text not in classes:
        if classes == list(LETTERS):
            raise ParamError(f"`{name}` must be a single letter from a to z for task {task}; got `{shown(value)}`.")
        listed = ", ".join(classes[:30]) + (" …" if len(classes) > 30 else "")
        raise ParamError(f"`{name}` must be a class of task {task} ({listed or 'it has none'}); "
                         f"got `{shown(value)}`.")
    return text


def parse_word(value: str | None) -> str | None:
    """None when absent or blank; otherwise the word without surrounding spaces (≤ 64 printable characters)."""
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_WORD:
        raise ParamError(f"`token` is longer than {MAX_WORD} characters.")
    if not value.isprintable():
        raise ParamError("`token` contains control or non-printable characters.")
    return value.strip()


MAX_LIVE_TEXT = 2000  # characters of `text` on the live page (its tokens are bounded in live/inference.py)


def parse_position(value: str | None, n_tokens: int) -> int:
    """`at` of the live page: the token position whose next token is predicted; the last token when absent."""
    if value is None or value.strip() == "":
        return n_tokens - 1
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) >= n_tokens:
        raise ParamError(f"`at` must be a token position from 0 to {n_tokens - 1}; got `{shown(value)}`.")
    return int(text)


def parse_live_text(value: str | None) -> str:
    """`text` of the live page: "" when absent; free text up to 2,000 characters, where line breaks and
    tabs are fine but other control characters are not."""
    if value is None:
        return ""
    if len(value) > MAX_LIVE_TEXT:
        raise ParamError(f"`text` is {len(value):,} characters long; the live page runs at most "
                         f"{MAX_LIVE_TEXT:,} characters. Shorten it.")
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", value):
        raise ParamError("`text` contains control characters (only line breaks and tabs are allowed).")
    return value
