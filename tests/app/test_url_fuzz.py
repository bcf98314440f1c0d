"""Property-based URL fuzz: every page of the app, opened with generated query parameters, renders without
an exception, and every error or warning it shows is a readable message (README, "Links are the API").

The parameters mix valid values read from the database (SAE keys, latent ids, letters, tasks and their classes
(`task=`, `class=`, a third of the URLs a task with one of its own classes), vocabulary words, sort names) with
edge values (ids at and past the ends, negative and huge numbers, floats, exponents,
unicode digits, blanks, 10 kB strings, control characters, injection strings, path traversal, comma lists
with empty items), unknown keys and repeated keys. Hypothesis is seeded and derandomized: every run renders
the same URLs, and nothing is written to an example database."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from backend.database import ExplorerDB
from backend.params import LETTERS, SEARCH_IN, SORTS
from backend.sae_filter import GROUPS
from tests.app.urls import PAGES, Params, assert_clean, describe, message_problem, render, warm_live_model

FUZZ_RENDERS = 1000  # renders per test run, over every (database, page) case together
DATABASES = ("demo", "sweep")  # conftest.py: named_db
CASES = [(database, page) for database in DATABASES for page in PAGES]
# Each page's share of the renders: more for the pages that read more parameters, less for compare (one
# parameter, and its charts make it the slowest page to render).
WEIGHTS = {"overview": 0.8, "latent": 1.2, "browse": 1.3, "letter": 1.1, "token": 1.1, "compare": 0.5, "live": 1.0}
RENDERS = {case: math.ceil(FUZZ_RENDERS * WEIGHTS[case[1]] / (len(DATABASES) * sum(WEIGHTS.values())))
           for case in CASES}
assert sum(RENDERS.values()) >= FUZZ_RENDERS
SEED = 20240611

# Every query parameter a page reads (grep st.query_params in views/), and `k`, which the hardening issue
# names but no page reads yet (until one does, it is one more unknown key).
KNOWN_KEYS = ("sae", "latent", "q", "in", "sort", "page", "letter", "x", "token", "saes", "k", "text", "model", "hook",
              "layer", "width", "arch", "l0", "group", "task", "class", "edit", "at", "spell",
              "steer", "gen", "temp", "seed", "watch")
SCATTER_X = ("encoder", "latent")  # views/letter.py: the `x` choices
UNKNOWN_KEYS = ("foo", "LATENT", "Sae", "sae ", "latent[]", "embed", "embed_options", "__proto__", "_stcore",
                "page_size", "名前", "q\x00")
HUGE = ("99999999999999999999", str(2**63), str(2**31), "1" * 400, "-" + "9" * 30)
NUMERIC_EDGES = ("0", "-0", "+1", "-1", "1.0", "1.5", "-1.5", "1e3", "1E3", "1e-3", "0x1f", "0b1", "0o7", "1_000",
                 "00007", " 7 ", "7\t", "nan", "NaN", "inf", "-inf", "١٢", "٣", "１２", "²", "Ⅻ", "𝟕", "7٣")
TEXT_EDGES = (
    "", " ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u200b", "\ufeff", "\u202e" + "abc",
    "x" * 10_000, "a" * 101, "a" * 65, "é" * 5000,
    "\x00", "a\x00b", "\x07", "\x1b[31mred", "\x7f", "a\tb", "a\nb",
    "' OR 1=1 --", "1; DROP TABLE latents", "'; DROP TABLE saes; --", "\" OR \"\"=\"", "%' OR '%'='",
    "_", "%", "\\", "'", "\"", "`", "``", "?", "&", "=", "#", "+", "%00", "%2e%2e%2f",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)", "</div><b>x</b>",
    "**bold**", "[link](http://example.com)", "$x^2$", ":material/warning:", "{0}", "%s", "${x}",
    "../../etc/passwd", "..\\..\\windows\\win.ini", "/", "./latent", "file:///etc/passwd",
    "a,,b", ",", ",,", " , ", "a,", ",a", "a, b", "a;b",
    "null", "None", "true", "[]", "{}", "名前", "🙂", "İ", "ß", "ǅ", "\u0301", "e\u0301",
)


@dataclass(frozen=True)
class Facts:
    """Valid values read from one database."""
    sae_keys: tuple[str, ...]
    d_sae: tuple[int, ...]
    words: tuple[str, ...]  # probe words and absorbed examples (token page)
    tokens: tuple[str, ...]  # vocabulary tokens as stored, leading spaces included (browse search)
    models: tuple[str, ...] = ()  # the SAE list filters (overview, compare)
    hooks: tuple[str, ...] = ()
    layers: tuple[int, ...] = ()
    archs: tuple[str, ...] = ()
    l0s: tuple[float, ...] = ()
    tasks: tuple[str, ...] = ("first_letter",)  # the absorption tasks (`task=`) and every class of them (`class=`)
    classes: tuple[str, ...] = tuple(LETTERS)
    task_classes: tuple[tuple[str, tuple[str, ...]], ...] = (("first_letter", tuple(LETTERS)),)


def read_facts(path: Path) -> Facts:
    db = ExplorerDB(path)
    try:
        saes = db.saes()
        keys = tuple(saes["sae_key"])
        model = saes["model_name"].iloc[0]
        vocabulary = db.probe_vocabulary(model) if db.has_absorption_tables() else []
        absorbed = [w for key in keys[:3] for w in db.absorbed_examples(key, 5)] if db.has_absorption_tables() else []
        tokens = db.token_strings(model, range(400)).values()
        tasks = db.tasks()
        return Facts(keys, tuple(int(d) for d in saes["d_sae"]), tuple(vocabulary[::max(len(vocabulary) // 200, 1)])
                     + tuple(absorbed), tuple(tokens), models=tuple(sorted(set(saes["model_name"]))),
                     hooks=tuple(sorted(set(saes["hook_name"]))),
                     layers=tuple(sorted({int(x) for x in saes["layer"].dropna()})),
                     archs=tuple(sorted(set(saes["training_architecture"]))), l0s=tuple(float(x) for x in saes["l0"]),
                     tasks=tuple(t.task for t in tasks) or ("first_letter",),
                     classes=tuple(dict.fromkeys(c for t in tasks for c in t.classes)) or tuple(LETTERS),
                     task_classes=tuple((t.task, t.classes) for t in tasks if t.classes)
                     or (("first_letter", tuple(LETTERS)),))
    finally:
        db.close()


# --- strategies --------------------------------------------------------------------------------
def free_text(max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def edge_text() -> st.SearchStrategy[str]:
    return st.sampled_from(TEXT_EDGES)


def mostly(valid: st.SearchStrategy[str], *other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`valid` about 60 % of the time (so pages get past validation and run their queries), else `other`."""
    return st.sampled_from((True, True, True, False, False)).flatmap(
        lambda pick_valid: valid if pick_valid else st.one_of(*other))


def numbers(facts: Facts) -> st.SearchStrategy[str]:
    """Ids in and around every SAE's range, huge and negative numbers, and non-integer spellings."""
    ends = sorted({n + delta for d in facts.d_sae for n in (0, d) for delta in (-1, 0, 1)})
    whole = st.one_of(st.sampled_from(ends), st.integers(-10**30, 10**30))
    return mostly(st.one_of(st.sampled_from(ends), st.integers(0, max(facts.d_sae) - 1)).map(str),
                  whole.map(str), whole.map(lambda n: f" {n} "), st.sampled_from(NUMERIC_EDGES + HUGE),
                  st.floats(allow_nan=True, allow_infinity=True).map(str), edge_text(), free_text())


def sae_keys(facts: Facts) -> st.SearchStrategy[str]:
    key = st.sampled_from(facts.sae_keys)
    return mostly(key, key.map(str.upper), key.map(lambda k: f" {k} "), key.map(lambda k: k[:-1]),
                  edge_text(), free_text())


def sae_lists(facts: Facts) -> st.SearchStrategy[str]:
    """`saes=`: real keys joined by commas, or with empty items, duplicates, spaces and unknown keys mixed in."""
    valid = st.lists(st.sampled_from(facts.sae_keys), min_size=1, unique=True).map(",".join)
    item = st.one_of(st.sampled_from(facts.sae_keys), st.sampled_from(("", " ", "nope", "' OR 1=1 --")),
                     free_text(8))
    mixed = st.tuples(st.lists(item, min_size=1, max_size=6), st.sampled_from((",", ", ", " ,", ",,"))).map(
        lambda parts: parts[1].join(parts[0]))
    return mostly(valid, mixed, edge_text(), st.just(",".join(facts.sae_keys * 200)))


def words(facts: Facts) -> st.SearchStrategy[str]:
    pool = st.sampled_from(facts.words + facts.tokens)
    return mostly(pool, pool.map(str.upper), pool.map(lambda w: w[:2]), edge_text(), free_text(80))


def live_texts(facts: Facts) -> st.SearchStrategy[str]:
    """`text=` of the live page: sentences of vocabulary words (run through the model), and texts past its
    character and token limits."""
    sentence = st.lists(st.sampled_from(facts.words + facts.tokens), min_size=1, max_size=12).map(" ".join)
    over_limits = st.sampled_from(("x," * 700, " snake" * 340, "s" * 2001))  # 1,400 tokens; 2,040 chars; 2,001
    return mostly(sentence, over_limits, edge_text(), free_text(80))


def filter_values(known: tuple) -> st.SearchStrategy[str]:
    """A filter value (model, hook, layer, width, architecture) the database has, or one it lacks."""
    value = st.sampled_from(tuple(map(str, known)))
    return mostly(value, value.map(str.upper), value.map(lambda v: f" {v} "), value.map(lambda v: v[:-1]),
                  st.sampled_from(NUMERIC_EDGES + HUGE), edge_text(), free_text(12))


def l0_ranges(facts: Facts) -> st.SearchStrategy[str]:
    """`l0=`: ranges around the SAEs' L0s, open ends, reversed and malformed ranges."""
    end = st.one_of(st.sampled_from(facts.l0s), st.floats(0, 500, allow_nan=False)).map(lambda x: f"{x:g}")
    valid = st.one_of(st.tuples(end, end).map(lambda p: f"{min(p, key=float)}-{max(p, key=float)}"),
                      end.map(lambda x: f"{x}-"), end.map(lambda x: f"-{x}"), end.map(lambda x: f"{x}..{x}"))
    other = st.one_of(st.tuples(end, end).map("-".join), st.sampled_from(("-", "..", "1-2-3", "nan-inf", "1e3-",
                                                                          "-1-5", "5 - 7", "0-0")))
    return mostly(valid, other, st.sampled_from(NUMERIC_EDGES + HUGE), edge_text(), free_text(12))


def letters() -> st.SearchStrategy[str]:
    letter = st.sampled_from(LETTERS)
    return mostly(letter, letter.map(str.upper), letter.map(lambda c: f" {c} "),
                  st.sampled_from(("ab", "é", "ς", "Σ", "ǅ", "ﬀ", "1", "_")), edge_text(), free_text(3))


def task_names(facts: Facts) -> st.SearchStrategy[str]:
    """`task=`: the database's tasks, the registry's (one the database may lack), and misspellings."""
    name = st.sampled_from(facts.tasks + ("wordnet_pos", "wordnet_category", "first_letter"))
    return mostly(name, name.map(str.upper), name.map(lambda n: f" {n} "), name.map(lambda n: n[:-1]),
                  name.map(lambda n: n.replace("_", " ")), edge_text(), free_text(12))


def classes(facts: Facts) -> st.SearchStrategy[str]:
    """`class=` (and a class under `letter=`): any task's classes, so most land in a task that lacks them."""
    name = st.sampled_from(facts.classes)
    return mostly(name, name.map(str.upper), name.map(lambda c: f" {c} "), name.map(lambda c: c + "s"),
                  st.sampled_from(("noun", "animals", "ANIMAL", "s", "é")), edge_text(), free_text(8))


def choices(names) -> st.SearchStrategy[str]:
    name = st.sampled_from(tuple(names))
    return mostly(name, name.map(str.upper), name.map(lambda n: f"{n} "), edge_text(), free_text(12))


def searches(facts: Facts) -> st.SearchStrategy[str]:
    """`q` (the start page's search box; Browse's token search too): words, latents bare and `SAE/latent` (in and out
    of range, misspelt keys), SAE keys, classes and `label:` searches."""
    key = st.sampled_from(facts.sae_keys)
    latent = numbers(facts)
    label = st.tuples(st.sampled_from(("label:", "LABEL: ", "label:  ")), st.one_of(words(facts), edge_text(),
                                                                              free_text(12))).map("".join)
    return st.one_of(words(facts), latent, st.tuples(key, st.sampled_from("/:# "), latent).map("".join),
                     key, key.map(lambda k: k[:-1] + "9"), classes(facts), label)


def edit_specs(facts: Facts) -> st.SearchStrategy[str]:
    """`edit=` of the live page: POSITION:LATENT:VALUE edits (in and out of range, scales, lists), and junk."""
    position = st.one_of(st.just("*"), st.integers(-2, 40).map(str), edge_text())
    value = st.one_of(st.sampled_from(("0", "x2", "x0.5", "-3", "1e3", "5000", "x-1", "nan", "inf")),
                      st.floats(-2000, 2000, allow_nan=False).map(lambda v: f"{v:g}"))
    spec = st.tuples(position, numbers(facts), value).map(":".join)
    return mostly(spec, st.lists(spec, min_size=2, max_size=20).map(",".join), edge_text(), free_text(20))


def steer_specs(facts: Facts) -> st.SearchStrategy[str]:
    """`steer=` of the live page: LATENT:ALPHA (in and out of range, lists), and junk."""
    alpha = st.one_of(st.sampled_from(("0", "12", "-3.5", "1e3", "5000", "nan", "inf", "x2")),
                      st.floats(-2000, 2000, allow_nan=False).map(lambda v: f"{v:g}"))
    spec = st.tuples(numbers(facts), alpha).map(":".join)
    return mostly(spec, st.lists(spec, min_size=2, max_size=6).map(",".join), edge_text(), free_text(20))


def generation_values() -> st.SearchStrategy[str]:
    """`gen=`, `temp=`, `seed=`: small valid values (each generation costs a model run per token) and edges."""
    return mostly(st.sampled_from(("1", "2", "3", "0", "0.5", "41", "-1", "2.5")), edge_text(),
                  st.sampled_from(NUMERIC_EDGES + HUGE))


def value_for(key: str, facts: Facts) -> st.SearchStrategy[str]:
    # `sort` draws from every Browse sort, the probe-free score sorts (enc_dec, parent) among them
    by_key = {"sae": sae_keys(facts), "latent": numbers(facts), "page": mostly(st.integers(0, 90).map(str),
              numbers(facts)), "k": numbers(facts), "q": searches(facts), "token": words(facts),
              "in": choices(SEARCH_IN), "sort": choices(SORTS), "x": choices(SCATTER_X),
              "letter": st.one_of(letters(), classes(facts)), "task": task_names(facts), "class": classes(facts),
              "saes": sae_lists(facts), "text": live_texts(facts), "model": filter_values(facts.models),
              "hook": filter_values(facts.hooks), "layer": filter_values(facts.layers),
              "width": filter_values(tuple(sorted(set(facts.d_sae)))), "arch": filter_values(facts.archs),
              "l0": l0_ranges(facts), "group": choices(GROUPS), "edit": edit_specs(facts), "at": numbers(facts),
              "spell": words(facts), "steer": steer_specs(facts), "gen": generation_values(),
              "temp": generation_values(), "seed": generation_values(),
              "watch": mostly(st.sampled_from((" S, T", " the", "a,b,c", " snake, snake")), edge_text(), free_text(30))}
    return by_key[key]


def repeated(value: st.SearchStrategy[str]) -> st.SearchStrategy[str | list[str]]:
    """Mostly one value; sometimes the key repeated, `?latent=1&latent=2` (AppTest encodes a list value as
    repeated keys; st.query_params.get returns the last)."""
    return st.one_of(value, value, value, st.lists(value, min_size=2, max_size=3))


def task_and_class(facts: Facts) -> st.SearchStrategy[dict]:
    """A task of the database with one of its own classes (under `class=` or `letter=`), so that pages get past
    validation into every task's views; drawn independently, the two rarely agree."""
    def of(task: tuple[str, tuple[str, ...]]) -> st.SearchStrategy[dict]:
        name, task_classes = task
        return st.tuples(st.sampled_from(("class", "letter")), st.sampled_from(task_classes)).map(
            lambda pair: {"task": name, pair[0]: pair[1]})

    return st.sampled_from(facts.task_classes).flatmap(of)


def url_params(facts: Facts) -> st.SearchStrategy[dict]:
    known = st.fixed_dictionaries({}, optional={key: repeated(value_for(key, facts)) for key in KNOWN_KEYS})
    unknown = st.dictionaries(st.one_of(st.sampled_from(UNKNOWN_KEYS), free_text(10)).filter(
        lambda key: key not in KNOWN_KEYS), st.one_of(edge_text(), free_text()), max_size=2)
    paired = st.one_of(st.just({}), st.just({}), task_and_class(facts))  # a third of the URLs: a matching pair
    return st.tuples(known, unknown, paired).map(lambda parts: {**parts[1], **parts[0], **parts[2]})


# --- the test ----------------------------------------------------------------------------------
def fuzz(page: str, facts: Facts, max_examples: int, case: int = 0) -> int:
    """Render `page` with `max_examples` generated parameter sets (seeded by `case`); returns the number of
    renders done."""
    renders = []

    @seed(SEED + case)
    @settings(max_examples=max_examples, derandomize=True, deadline=None, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no slow "explain" phase on failure
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example, HealthCheck.filter_too_much])
    @given(params=url_params(facts))
    def check(params: Params) -> None:
        at = render(page, params)
        renders.append(1)
        assert_clean(at, describe(page, params))

    check()
    return len(renders)


@pytest.mark.parametrize("page", PAGES)
def test_generated_urls_render_without_a_traceback(named_db: tuple[str, Path], page: str):
    name, path = named_db
    if page == "live":
        warm_live_model(path)  # the model's cold load would not fit a render's timeout
    wanted = RENDERS[name, page]
    done = fuzz(page, read_facts(path), wanted, CASES.index((name, page)))
    assert done >= wanted, f"only {done} of {wanted} renders of {page} ran"


def test_fuzz_cases_cover_every_page_and_reach_the_render_count():
    assert {page for _, page in CASES} == set(PAGES) == {"overview", "latent", "browse", "letter", "token", "compare",
                                                           "live"}
    assert set(WEIGHTS) == set(PAGES)
    assert sum(RENDERS.values()) >= FUZZ_RENDERS >= 1000


@pytest.mark.parametrize("message, readable", [
    ("Latent 9 is out of range: this SAE has latents 0 to 7.", True),
    ("Unknown SAE `名前`. Known SAEs: a, b.", True),
    ("", False), ("  ", False),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1", False),
    ("TypeError: page_link() got multiple values for argument 'page'", False),
    ("Conversion Error: could not convert string", False),
    ("bad value `a\x00b`", False),
    ("x" * 2000, False),
])
def test_the_message_check_tells_readable_messages_from_tracebacks(message: str, readable: bool):
    assert (message_problem(message) is None) == readable
