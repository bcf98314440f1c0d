"""Rendering one URL (page + query parameters) headless, checking what it shows, and reading the links
it renders: shared by the URL fuzz (test_url_fuzz.py) and the link crawl (test_link_crawl.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from streamlit.testing.v1 import AppTest

from views.common import PAGE_FILES

TIMEOUT = 60
APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = tuple(PAGE_FILES)
DEFAULT_PAGE = "overview"  # `/` and a page link with an empty page name
Params = Mapping[str, str | list[str]]  # a list: the key repeated in the query string, one value each

# What a traceback or a raw exception looks like when it leaks into a message.
TRACEBACK = re.compile(r"Traceback|\b\w*(?:Error|Exception)\b|\b\w+ Error:|File \"[^\"]*\", line \d+")
MAX_MESSAGE = 1000
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")

# st.Page hashes its url_path and AppTest.switch_page before the first run hashes the file name: the two
# agree because every url_path in app.py is its file's stem, so a URL renders in one run, like a browser.
assert all(Path(path).stem == page for page, path in PAGE_FILES.items())


def render(page: str, params: Params) -> AppTest:
    """`/<page>?<params>` opened in a fresh session (a fresh AppTest), as a pasted URL would be."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(PAGE_FILES[page])
    at.query_params = {key: list(value) if isinstance(value, list) else value for key, value in params.items()}
    return at.run()


def describe(page: str, params: Params) -> str:
    return f"/{page}?{dict(params)!r}"


def shown_messages(at: AppTest) -> list[str]:
    return [str(element.value) for element in (*at.error, *at.warning)]


def message_problem(message: str) -> str | None:
    """Why an st.error/st.warning text is not a readable message for a person, or None."""
    if not message.strip():
        return "empty message"
    if TRACEBACK.search(message):
        return f"traceback or exception text: {TRACEBACK.search(message).group(0)!r}"
    if len(message) > MAX_MESSAGE:
        return f"{len(message)} characters long"
    if CONTROL.search(message):
        return "control characters"
    return None


def exception_text(element) -> str:
    return "\n".join([str(element.value), *element.stack_trace])


def assert_clean(at: AppTest, where: str) -> None:
    """No exception on the page; every error and warning it shows is a readable message."""
    assert not at.exception, f"{where}: " + "\n".join(exception_text(e) for e in at.exception)
    for message in shown_messages(at):
        problem = message_problem(message)
        assert problem is None, f"{where}: {problem} in {message[:300]!r}"
    assert at.title or at.error or at.info, f"{where}: the page showed neither a title nor a message"


def parse_url(url: str) -> tuple[str, dict[str, str | list[str]]]:
    """`./latent?sae=a&latent=3` -> ("latent", {"sae": "a", "latent": "3"}): the page and its parameters."""
    parts = urlsplit(url)
    page = parts.path.removeprefix("./").strip("/") or DEFAULT_PAGE
    return page, query_params(parts.query)


def query_params(query_string: str) -> dict[str, str | list[str]]:
    parsed = parse_qs(query_string, keep_blank_values=True)
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


def page_links(at: AppTest) -> list[tuple[str, dict[str, str | list[str]]]]:
    """Every st.page_link on the page, as (page, parameters); the default page's links have no page name."""
    return [(link.proto.page or DEFAULT_PAGE, query_params(link.proto.query_string))
            for link in at.get("page_link")]


def link_column_urls(at: AppTest) -> list[str]:
    """The URLs in every st.dataframe column configured as a LinkColumn."""
    urls = []
    for frame in at.dataframe:
        config = json.loads(frame.proto.columns or "{}")
        linked = [name for name, column in config.items()
                  if column.get("type_config", {}).get("type") == "link"]
        for name in linked:
            if name in frame.value.columns:
                urls += [str(url) for url in frame.value[name].dropna() if str(url)]
    return urls


def links(at: AppTest) -> list[tuple[str, dict[str, str | list[str]]]]:
    """Every link a page renders: page links, then link-column URLs, as (page, parameters)."""
    return page_links(at) + [parse_url(url) for url in link_column_urls(at)]


def warm_live_model(db_path: Path) -> None:
    """Load the embedded model once in this process before the live page renders with a 60 s timeout: the
    page's st.cache_resource loader reaches precompute.loading.model's per-process cache, so its first
    render does not pay the cold load (tens of seconds on a busy CPU). Nothing to do when the database's
    SAEs use another model or the model packages are missing (the page then says why)."""
    from backend.database import ExplorerDB
    from live.inference import EMBEDDED_MODEL, LiveUnavailable, load_model

    db = ExplorerDB(db_path)
    try:
        uses_embedded = EMBEDDED_MODEL in set(db.saes()["model_name"])
    finally:
        db.close()
    if uses_embedded:
        try:
            load_model(EMBEDDED_MODEL)
        except LiveUnavailable:
            pass


# One vocabulary (backend/verdicts.py): texts that no page may show. A raw missing value where a number or a word
# should be (after a separator, or a whole table cell), and a verdict that contradicts itself.
# (a vocabulary token such as " nan" may be shown as itself: only a missing value in a value's place counts)
RAW_MISSING = re.compile(r"^(?:None|nan|NaN)$|[:=(\[,·]\s*(?:None|nan|NaN)(?=$|[\s,;)\]%·])"
                         r"|\b[A-Z][A-Za-z0-9]{0,3} (?:None|nan|NaN)(?=$|[\s,;)\]%·])")
CONTRADICTIONS = (re.compile(r"partly absorbed \(100%\)"), re.compile(r"fully absorbed \(\d+%\)"))


def shown_texts(at: AppTest) -> list[str]:
    texts = [str(e.value) for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success)]
    texts += [str(m.value) for m in at.metric]
    for frame in (d.value for d in at.dataframe):
        for column in frame.columns:
            if frame[column].dtype == object:
                texts += [value for value in frame[column] if isinstance(value, str)]
    return texts


def vocabulary_problems(at: AppTest) -> list[str]:
    """Texts on the page that show a raw None/NaN or a self-contradictory verdict."""
    problems = []
    for text in shown_texts(at):
        if RAW_MISSING.search(text):
            problems.append(f"raw missing value in {text[:200]!r}")
        problems += [f"contradiction {c.pattern!r} in {text[:200]!r}" for c in CONTRADICTIONS if c.search(text)]
    return problems
