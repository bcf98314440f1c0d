"""Live text: any text through the model and the sidebar SAE on the server — every token's latents, one
latent highlighted across the text, and the first-letter projection metric on each word token."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from backend import verdicts
from backend.params import MAX_LIVE_TEXT, ParamError, parse_latent, parse_live_text, parse_position, parse_text
from live import FULL_INSTALL, missing_model_packages
from live.tokenizer import TokenizerUnavailable, context_token_id, tokenize
from views import absorption_ui as ui
from views import common, reads

# Without the model packages the page says how to install them, before importing anything that needs them.
if missing := missing_model_packages():
    common.get_db()
    st.title("Live text")
    st.error(f"The live page runs the model on this server, and this install has only the explorer's packages "
             f"(missing: {', '.join(missing)}). Install the model packages with `{FULL_INSTALL}`, then restart the "
             "explorer. Every other page works without them.")
    st.stop()

from live import edits as editing  # noqa: E402  (needs the packages checked above)
from live import inference  # noqa: E402
from live import spell as spelling  # noqa: E402
from live import steer as steering  # noqa: E402
from live import tokenizer as live_tokenizer  # noqa: E402

EXAMPLES = ("The snake slid under the warm rock while the children watched quietly.",
            "Under a yellow umbrella we waited while the wind howled across the harbour.")
TOP_SHOWN = 5  # latents per token in the table
MAX_CHOICES = 200  # latents offered for highlighting


@st.cache_resource(show_spinner="Loading the model (once per server process) …")
def _model(model_name: str, from_pretrained_kwargs: tuple = ()):
    return inference.load_model(model_name, from_pretrained_kwargs)


def convert_with_progress(model_name: str) -> None:
    """The first load on a machine converts the embedded model (about 17 s): its steps show as they happen. Called
    before the first model run of a page view; a failure is left to load_model, which explains it."""
    if not inference.needs_conversion(model_name):
        return
    with st.status("Converting the embedded model, once per machine (about 20 s; later loads take a second) …",
                   expanded=True) as status:
        try:
            inference.convert_embedded_once(model_name, status.write)
        except Exception:  # noqa: BLE001
            status.update(label="The conversion did not finish.", state="error")
            return
        status.update(label="The embedded model is converted and cached.", state="complete", expanded=False)


@st.cache_resource(show_spinner="Loading the SAE (once per server process) …")
def _sae(source: inference.SAESource, db_path: str) -> inference.LoadedSAE:
    return inference.load_sae(source, Path(db_path))


@st.cache_resource(show_spinner=False, max_entries=16)
def _probes(db_path: str, identity: tuple[int, ...] | None, sae_key: str) -> dict[str, inference.LetterProbe]:
    return inference.letter_probes(common.db_at(db_path, identity), sae_key)


@st.cache_data(show_spinner=False, max_entries=64)
def _run(db_path: str, identity: tuple[int, ...] | None, source: inference.SAESource,
         tokens: tuple[tuple[int, str], ...]) -> inference.LiveResult:
    loaded = _sae(source, db_path)  # first: it says how the model is loaded
    return inference.run_text(_model(source.model_name, loaded.model_kwargs), loaded,
                         _probes(db_path, identity, source.sae_key), list(tokens), context_token_id(source.model_name))


db = common.get_db()
sae = common.current_sae()
source = inference.SAESource.from_row(sae)
st.title("Live text")
st.caption(f"Any text through `{sae.model_name}` up to `{sae.hook_name}` and the sidebar SAE "
           f"`{sae.sae_key}`, on this server's CPU. Up to {MAX_LIVE_TEXT:,} characters and "
           f"{inference.MAX_TOKENS} tokens; the text is kept in the URL (?text=).")


def show_unavailable(error: inference.LiveUnavailable | TokenizerUnavailable) -> None:
    st.error(str(error))
    st.caption("Only this page runs the model: every other page reads the database alone and works as before.")
    if error.details:
        with st.expander("Details"):
            st.code(error.details, language=None)
    st.stop()


# --- the spelling check (?spell=WORD): the task's own prompt, with the absorber, main latent and a control ablated
@st.cache_data(show_spinner=False, max_entries=64)
def _spell(db_path: str, identity: tuple[int, ...] | None, source: inference.SAESource, prefix: str, template: str,
           token_id: int, answers: tuple[str, ...], correct: int, named: tuple[tuple[str, tuple[int, ...]], ...],
           control_target: int | None) -> tuple[tuple[spelling.SpellRow, ...], int | None]:
    loaded = _sae(source, db_path)
    model = _model(source.model_name, loaded.model_kwargs)
    bos = model.tokenizer.bos_token_id if model.cfg.default_prepend_bos else None  # as the build's prompts
    prompt = spelling.build_prompt(model.tokenizer, prefix, template, token_id, bos)
    answer_ids = [model.tokenizer(answer, add_special_tokens=False)["input_ids"][0] for answer in answers]
    codes = spelling.word_codes(model, loaded.sae, source.hook_name, prompt)
    exclude = {latent for _, latents in named for latent in latents}
    wanted = [int(i) for i in (codes > 0).nonzero()[0]] + ([control_target] if control_target is not None else [])
    densities = common.db_at(db_path, identity).latent_densities(source.sae_key, wanted)
    control = spelling.control_latent(codes, exclude, densities,
                                      densities.get(control_target) if control_target is not None else None)
    conditions = [spelling.Condition(spelling.AS_IS, ()), *(spelling.Condition(name, latents) for name, latents in named),
                  *([spelling.Condition("control", (control,))] if control is not None else [])]
    return spelling.run_conditions(model, loaded.sae, source.hook_name, prompt, answer_ids, correct, conditions,
                                   codes), control


def spell_conditions(found) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The ablations the check runs: the absorber, the main latent, the split latents (each a row where it has one)."""
    named = []
    if found.absorber is not None:
        named.append(("absorber", (found.absorber,)))
    if found.main_latent is not None and found.main_latent != found.absorber:
        named.append(("main latent", (found.main_latent,)))
    split = tuple(x for x in found.split_latents if x != found.main_latent)
    if split:
        named.append(("split latents" if len(split) > 1 else "split latent", split))
    return tuple(named)


def spell_table(rows: tuple[spelling.SpellRow, ...], task, correct: int, labels: dict[int, str]) -> pd.DataFrame:
    base = rows[0].margin
    answer = task.class_label(task.classes[correct])
    return pd.DataFrame([{
        "ablated": row.name if row.name != "control" else "control",
        "latents": ", ".join(f"{x}" + (f" · {labels[x]}" if labels.get(x) else "") for x in row.latents) or "—",
        "act": ", ".join(f"{a:.2f}" for a in row.activations) or "—",
        "margin": row.margin, "change": row.margin - base,
        "top answer": task.class_label(task.classes[row.answer]), f"rank of {answer}": row.correct_rank,
    } for row in rows])


def render_spell(word: str) -> None:
    """The spelling check of one word in the sidebar SAE, for `?task=` (first letters by default)."""
    task = ui.current_task()
    st.subheader(f"Spelling check: “{word}” ({task.title})")
    found = reads.spell_prompt(sae.sae_key, task.task, word) if ui.has_absorption(sae.sae_key, task.task) else None
    if found is None:
        st.warning(f"“{word}” is not a word of the {task.title} probe run of `{sae.sae_key}` (the check uses that "
                   "run's own prompt for the word). Try a task word:")
        for near in reads.nearest_task_words(sae.model_name, word, 6):
            common.page_link("live", f"“{near}” →", sae=sae.sae_key, spell=near, **ui.task_params(task.task))
        return
    try:
        inference.check_sae_source(source, db.path)
        inference.check_packages(source.model_name)
    except inference.LiveUnavailable as error:
        show_unavailable(error)
    correct = task.classes.index(found.class_name)
    named = spell_conditions(found)
    target = found.absorber if found.absorber is not None else found.main_latent
    convert_with_progress(source.model_name)
    with st.spinner("Running the prompt with each latent ablated …"):
        try:
            rows, _ = _spell(*common.db_version(), source, found.prefix, found.template, found.token_id,
                                   tuple(task.answers), correct, named, target)
        except inference.LiveUnavailable as error:
            show_unavailable(error)
    verdict = found.verdict or "not measured (its fold's probe did not read the class there)"
    absorber = f" by latent {found.absorber}" if found.absorber is not None and found.verdict != "not absorbed" else ""
    if absorber and found.absorber == found.main_latent:
        absorber += f" ({verdicts.main_latent_as_absorber(task.class_label(found.class_name))})"
    answer = task.answers[correct]
    change = {row.name: row.margin - rows[0].margin for row in rows}
    lead = (f"**{found.token!r} is {verdict}{absorber}** in `{sae.sae_key}`. The model's margin for {answer!r} "
            f"(its logit minus the mean of the other {len(task.classes) - 1} answers) is {rows[0].margin:+.2f} as is")
    if "absorber" in change:
        lead += f"; ablating the absorber moves it by {change['absorber']:+.2f}"
    if "main latent" in change:
        lead += f", the main latent by {change['main latent']:+.2f}"
    if "control" in change:
        lead += f", a control latent by {change['control']:+.2f}"
    st.markdown(lead + ".")
    labels = ui.latent_labels(sae.sae_key, [x for row in rows for x in row.latents])
    st.dataframe(spell_table(rows, task, correct, labels), hide_index=True, width="stretch", key="live_spell",
                 column_config={"margin": st.column_config.NumberColumn(format="%+.2f"),
                                "change": st.column_config.NumberColumn(format="%+.2f"),
                                "latents": st.column_config.TextColumn("latents", width="medium"),
                                "act": st.column_config.TextColumn("act", help="its code at the word")})
    st.caption(f"Each row runs the probe run's own prompt for the word (its {task.class_noun}'s in-context examples "
               f"from fold {found.fold if found.fold is not None else '—'}, then “{found.template.format(word=found.token)}”) "
               f"with the listed latents' codes set to 0 at the word, the SAE spliced in at `{sae.hook_name}` with "
               "its error term (so nothing ablated is the model itself). A latent silent on the word (activation 0) "
               "cannot change the answer. The control is another latent active on the word, with the density "
               "closest to the absorber's (or the main latent's). top answer: the class whose answer has the highest "
               "logit; a small model may rank the right one second while its margin is high.")
    with st.expander("The prompt"):
        st.code(found.prefix + found.template.format(word=found.token), language=None)
    common.page_link("token", f"“{word}” across every SAE →", sae=sae.sae_key, token=word)


def on_text_entered() -> None:
    text = st.session_state["live_text"]
    if text.strip():
        st.query_params["text"] = text
    else:
        st.query_params.pop("text", None)


def text_box(text: str) -> None:
    st.session_state["live_text"] = text  # the URL is the source of truth; the widget follows it
    st.text_area("text", key="live_text", on_change=on_text_entered, max_chars=MAX_LIVE_TEXT, height=100,
                 placeholder="Type or paste any text, then press Ctrl+Enter",
                 help="Runs through the model and the sidebar SAE; kept in the URL (?text=).")


if "spell" in st.query_params:
    try:
        spell_word = parse_text(st.query_params.get("spell"), "spell").strip()
    except ParamError as error:
        common.show_param_error(error)
    if not spell_word:
        st.error("`spell` names the word to check, e.g. `?spell=snake`.")
        st.stop()
    render_spell(spell_word)
    st.stop()

try:
    text = parse_live_text(st.query_params.get("text"))
except ParamError as error:
    st.error(str(error))
    text_box("")
    st.stop()
text_box(text)
try:
    chosen = parse_latent(st.query_params.get("latent"), int(sae.d_sae))
except ParamError as error:
    common.show_param_error(error)

if not text.strip():
    st.caption("Type a text above, or try an example:")
    for example in EXAMPLES:
        common.page_link("live", f"“{example}” →", sae=sae.sae_key, text=example)
    st.stop()


try:
    inference.check_sae_source(source, db.path)
    inference.check_packages(source.model_name)
    tokens = tokenize(source.model_name, text)
except (inference.LiveUnavailable, TokenizerUnavailable) as error:
    show_unavailable(error)
if len(tokens) > inference.MAX_TOKENS:
    st.error(f"The text is {len(tokens):,} tokens long; the live page runs at most {inference.MAX_TOKENS} tokens. "
             "Shorten it.")
    st.stop()
if not tokens:
    st.info("The text has no tokens.")
    st.stop()
convert_with_progress(source.model_name)
try:
    with st.spinner("Running the text through the model …"):
        result = _run(*common.db_version(), source, tuple(tokens))
except inference.LiveUnavailable as error:
    show_unavailable(error)
st.caption(f"{len(result.tokens)} tokens · model up to the hook and SAE encoding in {result.seconds:.2f} s (a "
           "server process loads the model and SAE once, on its first run). The model sees one document-separator "
           "token before the text, as the corpus documents were read.")


# --- steering (?steer=LATENT:ALPHA): the text continued with and without a latent's decoder row added ----------
@st.cache_data(show_spinner=False, max_entries=64)
def _generated(db_path: str, identity: tuple[int, ...] | None, source: inference.SAESource, token_ids: tuple[int, ...],
               specs: tuple[str, ...], generation: steering.Generation) -> tuple[tuple[int, ...], float]:
    """The continuation of the text, steered by `specs` (none: the model as it is), and its seconds; cached apart,
    so trying another α reruns only the steered one."""
    loaded = _sae(source, db_path)
    parsed = steering.parse_steers(list(specs), int(loaded.sae.cfg.d_sae)) if specs else ()
    return steering.generate(_model(source.model_name, loaded.model_kwargs), loaded.sae, source.hook_name,
                             list(token_ids), context_token_id(source.model_name), parsed, generation)


def continuation(token_ids: tuple[int, ...]) -> str:
    return live_tokenizer.load(source.model_name).decode(list(token_ids))


def render_steer() -> None:
    """Leads the page when the URL steers: the text's continuation as is and steered, side by side."""
    try:
        steers = steering.parse_steers(st.query_params.get_all("steer"), int(sae.d_sae))
        generation = steering.parse_generation(st.query_params.get("gen"), st.query_params.get("temp"),
                                               st.query_params.get("seed"))
    except steering.SteerError as error:
        st.error(str(error))
        return
    labels = ui.latent_labels(sae.sae_key, [s.latent for s in steers])
    names = "; ".join(s.describe() + (f" ({labels[s.latent]})" if labels.get(s.latent) else "") for s in steers)
    st.subheader(f"Steering: {names}")
    try:
        with st.spinner(f"Generating {generation.new_tokens} tokens with and without steering …"):
            ids = tuple(t for t, _ in tokens)
            plain, plain_s = _generated(*common.db_version(), source, ids, (), generation)
            steered, steered_s = _generated(*common.db_version(), source, ids, tuple(s.spec for s in steers), generation)
    except inference.LiveUnavailable as error:
        show_unavailable(error)
    cols = st.columns(2)
    with cols[0]:
        st.markdown("**As is**")
        st.code(text + continuation(plain), language=None, wrap_lines=True)
    with cols[1]:
        st.markdown(f"**Steered** ({names})")
        st.code(text + continuation(steered), language=None, wrap_lines=True)
    how = "greedy" if generation.greedy else f"sampled at temperature {generation.temperature:g}, seed {generation.seed}"
    same = next((i for i, (a, b) in enumerate(zip(plain, steered)) if a != b), min(len(plain), len(steered)))
    st.caption(f"{generation.new_tokens} new tokens at most ({how}; `?gen=` 1–{steering.MAX_NEW_TOKENS}, `?temp=` "
               f"0–{steering.MAX_TEMPERATURE:g}, `?seed=`), both from the same text; the steered run adds α × each "
               f"latent's decoder row at `{sae.hook_name}` at every position, text and generated tokens alike (α in "
               f"the latent's activation units, as on its dashboard). The first {same} new tokens agree. Both "
               f"steered generation took {steered_s:.1f} s (the plain one {plain_s:.1f} s, cached for other α).")
    for s in steers:
        common.page_link("latent", f"Latent {s.latent}'s dashboard →", sae=sae.sae_key, latent=s.latent)


if "steer" in st.query_params:
    render_steer()


# --- one latent across the text ----------------------------------------------------------------------
def on_latent_chosen() -> None:
    st.query_params["latent"] = str(st.session_state["live_latent"])


def highlight(latent: int) -> None:
    acts = result.activations_of(latent)
    stored = db.latent(sae, latent)
    text_max = max(acts)
    scale = stored.max_act if stored is not None and stored.max_act > 0 else text_max
    peak = acts.index(text_max) if text_max > 0 else -1
    st.markdown(common.context_html([t.token for t in result.tokens], acts, scale, peak), unsafe_allow_html=True)
    where = (f"its corpus maximum, {stored.max_act:.2f}" if stored is not None and stored.max_act > 0
             else "its maximum in this text")
    st.caption(f"Latent {latent}: maximum {text_max:.2f} in this text" + (" (it never fires here)" if text_max <= 0
               else ", underlined where it peaks") + f"; colour relative to {where}. Hover a token for its value.")
    common.page_link("latent", f"Latent {latent}'s dashboard →", sae=sae.sae_key, latent=latent)


maxima = result.latent_maxima()
options = list(maxima)[:MAX_CHOICES]
latent = chosen if chosen is not None else (options[0] if options else None)
st.subheader("One latent across the text")
if latent is None:
    st.caption("No latent fires on this text.")
else:
    if latent not in options:
        options.insert(0, latent)
    st.session_state["live_latent"] = latent
    st.selectbox("latent", options, key="live_latent", on_change=on_latent_chosen,
                 format_func=lambda i: f"latent {i} · max {maxima.get(i, 0.0):.2f} in this text",
                 help="Latents active on the text, strongest first (the default); kept in the URL (?latent=).")
    highlight(latent)


# --- per token -----------------------------------------------------------------------------------------
def ablate_url(position: int, target: int) -> str:
    """This text with `target` ablated at `position`, its next token shown there (the edit section below)."""
    params = {"sae": sae.sae_key, "text": text, "latent": target, "edit": f"{position}:{target}:0", "at": position}
    return "./live?" + urlencode(params)


def token_table() -> pd.DataFrame:
    rows = []
    labels = ui.latent_labels(sae.sae_key, [x for token in result.tokens for x in token.latents[:TOP_SHOWN]])
    for token in result.tokens:
        row = {"#": token.position, "token": repr(token.token), "active": len(token.latents)}
        if latent is not None:
            row[f"latent {latent}"] = act = dict(zip(token.latents, token.activations)).get(latent, 0.0)
            row[f"ablate {latent} here"] = ablate_url(token.position, latent) if act > 0 else None
        row["ablate top 1 here"] = ablate_url(token.position, token.latents[0]) if token.latents else None
        for rank in range(TOP_SHOWN):
            has = rank < len(token.latents)
            row[f"top {rank + 1}"] = ui.latent_url(sae.sae_key, token.latents[rank]) if has else None
            row[f"act {rank + 1}"] = token.activations[rank] if has else None
            if rank == 0:  # the strongest latent's label: what it usually fires on
                row["top 1 label"] = labels.get(int(token.latents[0]), "") if has else ""
        rows.append(row)
    return pd.DataFrame(rows)


st.subheader("Per token")
st.caption(f"Each token's strongest {TOP_SHOWN} latents (click to open a latent's dashboard) and how many fire; "
           "activations are the SAE's codes, as the dashboards store them. ablate → reopens the text with that latent "
           "ablated at that token and shows the next token before and after.")
number = st.column_config.NumberColumn(format="%.2f")
config = {f"top {rank + 1}": st.column_config.LinkColumn(f"top {rank + 1}", display_text=r"latent=(\d+)")
          for rank in range(TOP_SHOWN)}
config.update({f"act {rank + 1}": number for rank in range(TOP_SHOWN)})
config["ablate top 1 here"] = st.column_config.LinkColumn(
    "ablate top 1 here", display_text="ablate →",
    help="Reopens this text with the token's strongest latent ablated at this token, and the next token before and after.")
if latent is not None:
    config[f"ablate {latent} here"] = st.column_config.LinkColumn(
        f"ablate {latent} here", display_text="ablate →",
        help=f"Latent {latent} ablated at this token (where it fires), and the next token before and after.")
if latent is not None:
    config[f"latent {latent}"] = number
st.dataframe(token_table(), hide_index=True, width="stretch", column_config=config, key="live_tokens")


# --- edits: ablate or scale latents, and watch the next token ---------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def _edited(db_path: str, identity: tuple[int, ...] | None, source: inference.SAESource, token_ids: tuple[int, ...],
            specs: tuple[str, ...], position: int, watched: tuple[int, ...] = ()) -> editing.EditResult:
    loaded = _sae(source, db_path)
    parsed = editing.parse_edits(list(specs), len(token_ids), int(loaded.sae.cfg.d_sae))
    return editing.run_edits(_model(source.model_name, loaded.model_kwargs), loaded.sae, source.hook_name,
                             list(token_ids), context_token_id(source.model_name), parsed, position, watched)


def watched_tokens(raw: str | None) -> list[tuple[str, int, int]]:
    """`watch=` (comma-separated strings, leading spaces kept: `watch= S, T`): (string, its first token id, how many
    tokens it has); a ParamError for too many or for control characters."""
    items = [item for item in parse_text(raw, "watch").split(",") if item.strip()]
    if len(items) > editing.MAX_WATCHED:
        raise ParamError(f"`watch` names {len(items)} tokens; the live page follows at most {editing.MAX_WATCHED}.")
    out = []
    for item in items:
        pieces = tokenize(source.model_name, item)
        if pieces:
            out.append((item, pieces[0][0], len(pieces)))
    return out


def watched_table(watched: list[tuple[str, int, int]], edited: editing.EditResult) -> pd.DataFrame:
    return pd.DataFrame([{"token": decoded(token_id), "named as": repr(item) + (f" (first of {n} tokens)" if n > 1 else ""),
                          "logit before": before, "logit after": after, "change": after - before}
                         for (item, token_id, n), before, after in zip(watched, edited.watched_before,
                                                                       edited.watched_after)])


def probe_table(edited: editing.EditResult) -> pd.DataFrame:
    """The letter probe's logit at the hook on every word token the edits changed, before and after."""
    probes = _probes(*common.db_version(), sae.sae_key)
    rows = []
    for reading in result.letters:
        probe = probes.get(reading.letter)
        if probe is None or reading.position not in (edited.resid_change or {}):
            continue
        change = edited.probe_logit_change(reading.position, probe.weight)
        rows.append({"#": reading.position, "token": repr(reading.token), "letter": reading.letter.upper(),
                     "probe logit before": reading.probe_logit, "after": reading.probe_logit + change,
                     "change": change})
    return pd.DataFrame(rows)


def live_params(**changes: object) -> dict[str, object]:
    """This page's URL with `changes` (None removes a key); `edit` is given as a list (the key repeated)."""
    params = {"sae": sae.sae_key, "text": text, **({"latent": latent} if latent is not None else {})}
    params.update(changes)
    return {key: value for key, value in params.items() if value is not None}


def edit_link(label: str, specs: list[str]) -> None:
    params = live_params(at=st.query_params.get("at"), watch=st.query_params.get("watch"))
    st.page_link(common.PAGE_FILES["live"], label=label,
                 query_params={**{k: str(v) for k, v in params.items()}, "edit": specs})


def decoded(token_id: int) -> str:
    return repr(live_tokenizer.load(source.model_name).decode([token_id]))


def next_token_table(result: editing.EditResult) -> pd.DataFrame:
    return pd.DataFrame({
        "rank": range(1, len(result.before.ids) + 1),
        "before": [decoded(i) for i in result.before.ids], "p before": result.before.probs,
        "its logit change": [a - b for a, b in zip(result.before_tokens_after, result.before.logits)],
        "after": [decoded(i) for i in result.after.ids], "p after": result.after.probs,
    })


def render_edits() -> None:
    st.subheader("Edit latents: what does the model predict next?")
    raw = st.query_params.get_all("edit")
    try:
        specs = editing.parse_edits(raw, len(tokens), int(sae.d_sae))
        position = parse_position(st.query_params.get("at"), len(tokens))
        watched = watched_tokens(st.query_params.get("watch"))
    except (editing.EditError, ParamError) as error:
        st.error(str(error))
        return
    if latent is not None:
        acts = result.activations_of(latent)
        peak = acts.index(max(acts))
        current = [e.spec for e in specs]
        cols = st.columns(2)
        with cols[0]:
            edit_link(f"Ablate latent {latent} everywhere →", current + [f"*:{latent}:0"])
        with cols[1]:
            edit_link(f"Ablate it at token {peak} ({result.tokens[peak].token!r}), its peak →",
                      current + [f"{peak}:{latent}:0"])
    if not specs:
        st.caption("`?edit=POSITION:LATENT:VALUE` sets a latent's activation at a token (`*`: every token; `0` "
                   "ablates, `x2` doubles) and splices the edited SAE reconstruction, plus the SAE's error term, into "
                   f"the model at `{sae.hook_name}`; `?at=` picks the token whose next token is shown (default: the "
                   f"last). Up to {editing.MAX_EDITS} edits.")
        return
    try:
        with st.spinner("Running the model with the edits …"):
            edited = _edited(*common.db_version(), source, tuple(t for t, _ in tokens), tuple(e.spec for e in specs),
                             position, tuple(token_id for _, token_id, _ in watched))
    except inference.LiveUnavailable as error:
        show_unavailable(error)
    st.markdown("Edits: " + "; ".join(e.describe([t for _, t in tokens]) for e in specs) + ".")
    st.dataframe(next_token_table(edited), hide_index=True, width="stretch", key="live_edits",
                 column_config={"p before": st.column_config.NumberColumn(format="%.3f"),
                                "p after": st.column_config.NumberColumn(format="%.3f"),
                                "its logit change": st.column_config.NumberColumn(format="%+.2f")})
    st.caption(f"The next token after token {position} ({tokens[position][1]!r}), top {editing.TOP_K} before and after "
               f"the edits; its logit change: how the edits moved the logit of each token the model predicted before. "
               f"Largest logit change over the vocabulary: {edited.max_logit_change:.3f}.")
    signed = st.column_config.NumberColumn(format="%+.2f")
    if watched:
        st.dataframe(watched_table(watched, edited), hide_index=True, width="stretch", key="live_watched",
                     column_config={"logit before": number, "logit after": number, "change": signed})
        if len(watched) >= 2:
            gap = [b[0] - b[1] for b in (edited.watched_before, edited.watched_after)]
            st.caption(f"Logit difference {decoded(watched[0][1])} − {decoded(watched[1][1])}: {gap[0]:+.2f} before, "
                       f"{gap[1]:+.2f} after the edits.")
    else:
        st.caption("`?watch= S, T` follows the logits of the tokens you name (comma-separated, leading spaces kept), "
                   "and the difference between the first two.")
    if result.has_letters:
        probes = probe_table(edited)
        if probes.empty:
            st.caption("No word token's residual stream changed at the hook, so no letter probe reading moved.")
        else:
            st.dataframe(probes, hide_index=True, width="stretch", key="live_edit_probes",
                         column_config={"probe logit before": number, "after": number, "change": signed})
            st.caption(f"The first-letter probe's logit at `{sae.hook_name}` on each word token the edits changed: "
                       "before, and with the edits' change to the residual stream there (the same hook, so this is the "
                       "probe's reading of exactly what the edit wrote). An absorber ablated at its word moves the "
                       "probe only as much as its decoder row carried the letter direction.")
    common.page_link("live", "Remove the edits →", **live_params())


render_edits()


# --- first letters ---------------------------------------------------------------------------------------
def absorber_text(reading: inference.LetterReading) -> str:
    return ", ".join(f"{a.latent}: z {a.z:.2f} × cos {a.cos:.2f}" for a in reading.absorbers)


def letter_table() -> pd.DataFrame:
    rows = []
    for r in result.letters:
        top = r.absorbers[0].latent if r.absorbers else None
        rows.append({
            "#": r.position, "token": repr(r.token), "letter": ui.letter_url(sae.sae_key, r.letter),
            "main latent": ui.latent_url(sae.sae_key, r.main_latent), "main fired": r.main_fired,
            "main z": r.main_z, "split fired": f"{r.n_split_fired}/{len(r.split)}",
            "split z": ", ".join(f"{s}: {z:.2f}" for s, z in r.split), "probe logit": r.probe_logit,
            "P": r.P, "M": r.M, "A": r.A, "absorbers": absorber_text(r),
            "top absorber": None if top is None else ui.latent_url(sae.sae_key, top),
            "absorption fraction": r.absorption_fraction, "full absorption": r.full_absorption,
        })
    return pd.DataFrame(rows)


def render_letters() -> None:
    st.subheader("First letters of word tokens")
    if not result.has_letters:
        st.info(f"The letter part needs absorption results for `{sae.sae_key}`, and this database has none: "
                "build them with `python -m precompute build` (absorption stage), or pick an SAE that has them in "
                "the sidebar. The per-token latents above need no absorption results.")
        return
    if not result.letters:
        st.caption("No word token here: a word token is ASCII letters with an optional leading space.")
        return
    ui.caveat(sae)
    st.caption("For each word token (ASCII letters with an optional leading space, word pieces included, as in "
               "the first-letter task's vocabulary): did its letter's main and split latents fire, and the "
               "projection metric's quantities here, in this text's context rather than the task's prompt. "
               "P = activation · unit probe direction; M = Σ z·cos over the split latents; A = the top ≤ 3 "
               f"z·cos of non-split latents with cos ≥ {inference.METRIC.absorber_cos_threshold}, the absorbers that "
               "carry the direction instead. z are the codes of the SAE with unit-norm decoder rows, as the "
               "metric reads them. The metric is defined on words the probe gets right (probe logit > 0).")
    ui.explainer()
    number = st.column_config.NumberColumn(format="%.2f")
    config = {name: number for name in ("main z", "probe logit", "P", "M", "A", "absorption fraction")}
    config.update({
        "letter": st.column_config.LinkColumn("letter", display_text=r"letter=([a-z])"),
        "main latent": st.column_config.LinkColumn("main latent", display_text=r"latent=(\d+)"),
        "top absorber": st.column_config.LinkColumn("top absorber", display_text=r"latent=(\d+)"),
    })
    st.dataframe(letter_table(), hide_index=True, width="stretch", column_config=config, key="live_letters")


render_letters()
