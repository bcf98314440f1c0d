"""Link crawl: from the overview and the live page, follow every link the pages render (st.page_link, and the URLs of
st.dataframe LinkColumns) and render each target in a fresh session, as a click on a shared link would.
Every target must render without an exception or a text outside the one vocabulary (a raw None/NaN, "partly absorbed
(100%)"), and the crawl must reach every page kind and the browse pager's next page.

The order is breadth-first within each link *shape* (target page + parameter names), always taking from the
least-visited shape: a plain breadth-first order would spend the whole budget on the overview's hundreds of
letter links and never reach the links that only deeper pages render (the browse pager, a latent's letter
roles)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend.database import ExplorerDB
from backend.sae_filter import FILTER_KEYS
from backend.scores import SCORE_SORTS
from tests import helpers
from tests.app.urls import PAGES, Params, assert_clean, describe, links, render, vocabulary_problems, warm_live_model

MAX_VIEWS = {"demo": 300, "sweep": 120}  # renders per crawl
HAS_SECOND_BROWSE_PAGE = {"demo": True, "sweep": False}  # the sweep's SAEs have ≤ 32 latents: one page of 50
ODD_KEYS_VIEWS = 40
# The overview, and the live page: no page links to it (the navigation menu, which is not an st.page_link,
# does), and its example links lead on to its latents and letters. The grouped overview and compare pages:
# their group links (filters) appear only once a grouping is chosen.
STARTS = (("overview", {}), ("live", {}), ("overview", {"group": "layer"}), ("compare", {"group": "arch"}))

Shape = tuple[str, tuple[str, ...], str]
# Links that run the model for seconds (a steered generation, the spelling check, an edit): a few of each shape show
# that they render; every Latent page links its own steering run, and following each would spend the budget there.
MODEL_RUNS = {"steer": 3, "spell": 4, "edit": 4}


def shape(page: str, params: Params) -> Shape:
    """A page, the parameters it was given and the task it shows: another task's pages are another kind of view,
    reached early rather than queued behind every class of the first task."""
    return page, tuple(sorted(params)), params.get("task") or ""


def model_run_cap(of: Shape) -> float:
    return min((MODEL_RUNS[key] for key in of[1] if key in MODEL_RUNS), default=float("inf"))


def url_key(page: str, params: Params) -> tuple:
    return page, tuple(sorted((key, tuple(value) if isinstance(value, list) else value)
                              for key, value in params.items()))


@dataclass
class Frontier:
    """Links waiting to be opened: one FIFO queue per shape; `pop` serves the least-visited shape first."""
    queues: dict[Shape, deque] = field(default_factory=dict)  # insertion order: shapes in discovery order
    visits: Counter = field(default_factory=Counter)
    seen: set = field(default_factory=set)

    def push(self, page: str, params: Params) -> None:
        key = url_key(page, params)
        if key not in self.seen:
            self.seen.add(key)
            self.queues.setdefault(shape(page, params), deque()).append((page, dict(params)))

    def pop(self) -> tuple[str, dict] | None:
        waiting = [s for s, queue in self.queues.items() if queue and self.visits[s] < model_run_cap(s)]
        if not waiting:
            return None
        chosen = min(waiting, key=lambda s: self.visits[s])  # min keeps discovery order among ties
        self.visits[chosen] += 1
        return self.queues[chosen].popleft()


@dataclass
class Crawl:
    opened: list[tuple[str, dict]] = field(default_factory=list)  # in the order rendered
    linked: list[tuple[str, dict]] = field(default_factory=list)  # every link seen, with repeats


def crawl(max_views: int) -> Crawl:
    """Open up to `max_views` URLs reachable from the overview, each checked by `assert_clean`."""
    frontier, done = Frontier(), Crawl()
    for page, params in STARTS:
        frontier.push(page, params)
    while len(done.opened) < max_views and (url := frontier.pop()) is not None:
        page, params = url
        at = render(page, params)
        done.opened.append(url)
        where = describe(page, params)
        assert_clean(at, where)
        assert not (problems := vocabulary_problems(at)), f"{where}: " + "; ".join(problems[:5])
        for target, target_params in links(at):
            assert target in PAGES, f"{where} links to an unknown page {target!r}"
            done.linked.append((target, target_params))
            frontier.push(target, target_params)
    return done


def is_next_page(page: str, params: dict) -> bool:
    """The browse pager's link past the first page (`page` ≥ 1, with no search)."""
    number = params.get("page", "0")
    return page == "browse" and "q" not in params and number.isdigit() and int(number) >= 1


def test_every_link_from_the_overview_renders(named_db: tuple[str, Path]):
    name, path = named_db
    warm_live_model(path)  # the live page's first render would otherwise load the model within its timeout
    opened = crawl(MAX_VIEWS[name]).opened
    assert len(opened) == MAX_VIEWS[name], f"the crawl ran out of links after {len(opened)} views"
    assert {page for page, _ in opened} == set(PAGES), "a page kind was never reached by a link"
    if HAS_SECOND_BROWSE_PAGE[name]:
        assert any(is_next_page(*url) for url in opened), "the browse pager's next-page link was not followed"
    assert any(page == "browse" and params.get("sort") in SCORE_SORTS for page, params in opened), \
        "no Browse sort by a probe-free score was followed (the latent page links to them)"
    filtered = {page for page, params in opened if set(params) & set(FILTER_KEYS)}
    assert filtered == {"overview", "compare"}, "a group's filter link was not followed from both list pages"
    measured = measured_tasks(path)
    featured = {params.get("task") for page, params in opened if page == "letter" and ("class" in params or
                                                                                   "letter" in params)}
    assert measured <= featured, f"no Feature page of task(s) {sorted(measured - featured)} was followed"
    if len(measured) > 1:  # the list pages' links to another task, and that task's own class links
        assert {page for page, params in opened if params.get("task", "first_letter") != "first_letter"} >= \
            {"letter", "compare", "overview"}, "another task's list pages were not reached by a link"


def measured_tasks(path: Path) -> set[str]:
    """The tasks some SAE of the database has results for."""
    db = ExplorerDB(path)
    try:
        return {task.task for task in db.tasks() if task.n_saes}
    finally:
        db.close()


ODD_KEYS = ("planted&latent=1", "second #2 ?/%+")  # SAE keys are free text: links must encode them


@pytest.fixture(scope="module")
def odd_keys_db(tmp_path_factory) -> Path:
    return helpers.build_tiny_database(tmp_path_factory.mktemp("oddkeys"), keys=ODD_KEYS)


def test_links_carry_sae_keys_with_url_characters(odd_keys_db: Path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DB", str(odd_keys_db))
    done = crawl(ODD_KEYS_VIEWS)
    assert {page for page, _ in done.opened} >= {"overview", "latent", "browse"}
    named = [(page, params["sae"]) for page, params in done.linked if "sae" in params]
    assert named and all(key in ODD_KEYS for _, key in named), sorted({n for n in named if n[1] not in ODD_KEYS})


@pytest.mark.parametrize(("text", "flagged"), [
    ("partly absorbed (100%)", True), ("fully absorbed (97%)", True), ("fraction: None", True), ("None", True),
    ("nan", True), ("P 0.818 · R nan", True), ("absorber (None)", True),
    ("None of the chosen SAEs matches the filter", False), ("partly absorbed (43%) by 409", False),
    ("partly absorbed (fraction 1.000, but not full absorption: a split latent still fires)", False),
    ("Nancy", False), ("— not measured", False),
])
def test_the_vocabulary_check_tells_contradictions_and_raw_missing_values(text, flagged):
    from tests.app.urls import CONTRADICTIONS, RAW_MISSING

    assert (bool(RAW_MISSING.search(text)) or any(c.search(text) for c in CONTRADICTIONS)) == flagged
