"""The start page's search box: one string (a word or token, a latent `3783` or `SAE/3783`, an SAE key, a letter or a
class of a task) routed to the page that answers it. Streamlit-free: the start page shows what this returns."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

MAX_QUERY = 200  # characters; longer input is refused with a message (the token page takes up to its own limit)
LATENT_OF_SAE = re.compile(r"^(?P<sae>\S+?)\s*[/:#]\s*(?P<latent>[0-9]+)$")  # `SAE/3783`, `SAE:3783`, `SAE#3783`
ASCII_DIGITS = re.compile(r"^[0-9]+$")
LABEL_QUERY = re.compile(r"^label\s*:\s*(?P<text>.*)$", re.IGNORECASE)  # `label: kosher`: latents by label text


@dataclass(frozen=True)
class SearchContext:
    """What a query is matched against: the database's SAEs (key -> width), the SAE a bare latent id means, and each
    task's classes (task -> its classes, first_letter's the 26 letters)."""
    widths: dict[str, int]
    default_sae: str | None
    task_classes: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Route:
    """Where a query goes: a page (views/common.PAGE_FILES name), its URL parameters, and what was understood."""
    page: str
    params: dict[str, str]
    understood: str


@dataclass(frozen=True)
class LabelSearch:
    """`label: TEXT`: the latents whose label (latent_labels: their top tokens) contains TEXT; the start page lists
    them."""
    text: str


@dataclass(frozen=True)
class NoRoute:
    """A query that names nothing here: why, and the nearest things it may have meant."""
    message: str
    suggestions: list[Route] = field(default_factory=list)


def route(query: str, context: SearchContext) -> Route | LabelSearch | NoRoute | None:
    """None for an empty query; else the page that answers it (or the label search), or why none does with
    suggestions."""
    text = " ".join(query.split())
    if not text:
        return None
    if len(text) > MAX_QUERY:
        return NoRoute(f"The search takes up to {MAX_QUERY} characters ({len(text):,} given).")
    if (label := LABEL_QUERY.match(text)) is not None:
        wanted = label.group("text").strip()
        return LabelSearch(wanted) if wanted else NoRoute("`label:` needs some text to look for, e.g. `label: snake`.")
    for match in (latent_route, sae_route, class_route, misspelt_sae):
        found = match(text, context)
        if found is not None:
            return found
    return Route("token", {"token": text}, f"the word or text “{text}”")


def latent_in(sae: str, latent_text: str, context: SearchContext) -> Route | NoRoute:
    latent, width = int(latent_text), context.widths[sae]
    if latent >= width:
        return NoRoute(f"SAE `{sae}` has latents 0–{width - 1:,}; {latent_text} is past its last.",
                       [Route("latent", {"sae": sae, "latent": str(width - 1)}, f"latent {width - 1:,} of `{sae}`")])
    return Route("latent", {"sae": sae, "latent": str(latent)}, f"latent {latent:,} of `{sae}`")


def latent_route(text: str, context: SearchContext) -> Route | NoRoute | None:
    """`3783` (the default SAE's latent) or `SAE/3783`."""
    if ASCII_DIGITS.match(text) and context.default_sae is not None:
        return latent_in(context.default_sae, text, context)
    match = LATENT_OF_SAE.match(text)
    if match is None:
        return None
    sae, latent = match.group("sae"), match.group("latent")
    if sae in context.widths:
        return latent_in(sae, latent, context)
    near = close_saes(sae, context)
    return NoRoute(f"No SAE `{sae}` in this database.",
                   [*(latent_in(key, latent, context) for key in near if int(latent) < context.widths[key]),
                    Route("token", {"token": text}, f"the text “{text}” on the token page")])


def sae_route(text: str, context: SearchContext) -> Route | None:
    if text in context.widths:
        return Route("browse", {"sae": text}, f"the latents of SAE `{text}`")
    return None


def class_route(text: str, context: SearchContext) -> Route | None:
    """A letter (the first-letter task) or a class of another task, matched case-insensitively."""
    wanted = text.lower()
    for task, classes in context.task_classes.items():
        for name in classes:
            if name.lower() == wanted:
                label = f"letter {name.upper()}" if task == "first_letter" else f"class “{name}” of {task}"
                return Route("letter", {"task": task, "class": name}, label)
    return None


def close_saes(text: str, context: SearchContext) -> list[str]:
    return difflib.get_close_matches(text, list(context.widths), n=3, cutoff=0.75)


def misspelt_sae(text: str, context: SearchContext) -> NoRoute | None:
    """A near-miss of an SAE key (it has the key's shape: a dash and no space) is suggested, not searched as a word."""
    if " " in text or "-" not in text:
        return None
    near = close_saes(text, context)
    if not near:
        return None
    return NoRoute(f"No SAE `{text}` in this database.",
                   [*(Route("browse", {"sae": key}, f"the latents of SAE `{key}`") for key in near),
                    Route("token", {"token": text}, f"the text “{text}” on the token page")])
