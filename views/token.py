"""Token search: one word across every SAE — did the letter latents fire, or was its first letter absorbed? In the
prompt of the first-letter task, and in running text (the dashboard corpus); and its verdict in every other task it
belongs to (its class there, e.g. animal in wordnet_category), per SAE. Any other string: how the model
tokenizes it, what can be measured of its tokens, and the nearest words of the task."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from backend import verdicts
from backend.database import TaskInfo, TokenLetterRates, TokenRunningText, absorber
from backend.params import ParamError, parse_word
from backend.scores import DENSE_ABSORBER, is_dense_absorber
from contract import provenance
from contract.schema import DEFAULT_TASK
from views import absorption_ui as ui
from views import common, reads

N_SUGGESTIONS = 12
N_NEAREST = 8

db = common.get_db()
sae = common.current_sae()
sae_key, model_name = sae.sae_key, sae.model_name
try:
    word = parse_word(st.query_params.get("token"))
except ParamError as error:
    common.show_param_error(error)


def on_word_entered() -> None:
    text = st.session_state["token_input"].strip()
    if text:
        st.query_params["token"] = text
    else:
        st.query_params.pop("token", None)


st.title("Token search")
st.caption(f"Words of `{model_name}` (the sidebar SAE's model), across every SAE of that model in this database.")
ui.caveat()  # the page is about every SAE, not the sidebar's
ui.explainer()

st.session_state["token_input"] = word or ""  # the URL is the source of truth; the widget follows it
st.text_input("word", key="token_input", on_change=on_word_entered, placeholder="e.g. snake",
              help="One token of the model's vocabulary, with or without its leading space; case-sensitive. "
                   "The choice is kept in the URL (?token=).")

HAS_PROBES = bool(reads.has_absorption_tables()) and reads.probe_run_count(model_name) > 0
RUNNING_TEXT_SAES = set(reads.running_text_sae_keys())  # empty: not computed (an older or migrated database)
HAS_RUNNING_TEXT = bool(RUNNING_TEXT_SAES)
NOT_COMPUTED = ("not computed for this SAE in this database (`python -m precompute build --force` computes it with "
                "the dashboards)")
if not HAS_PROBES:
    if not HAS_RUNNING_TEXT:
        st.info(f"This database holds no first-letter probe data for `{model_name}`, and its running-text token "
                "index is not computed: nothing to look up. Rebuild it with `python -m precompute build`.")
        st.stop()
    st.info(f"This database holds no first-letter probe data for `{model_name}`: only how its tokens occur in "
            "running text (the dashboard corpus) can be looked up.")


def suggestion_links(words: list[str], label: str) -> None:
    if not words:
        return
    st.caption(label)
    cols = st.columns(min(len(words), 6))
    for i, suggestion in enumerate(words):
        with cols[i % len(cols)]:
            common.page_link("token", suggestion, sae=sae_key, token=suggestion)


# --- running text: one line per SAE -----------------------------------------------------------------
def percent(rate: float) -> str:
    return f"{rate:.1%}" if 0 < rate < 0.01 else f"{rate:.0%}"


def latent_link(key: str, latent: int) -> str:
    return f"[{int(latent)}]({ui.latent_url(key, latent)})"


def examples_url(key: str, token: str) -> str | None:
    """Browse's running-text search for the token: its latents and where it occurs. None for a blank token."""
    text = token.strip()
    return "./browse?" + urlencode({"sae": key, "q": text, "in": "contexts"}) if text else None


def occurrences_text(key: str, token: str, n: int) -> str:
    label = f"{n:,} occurrence{'' if n == 1 else 's'}"
    url = examples_url(key, token)
    return f"[{label}]({url})" if url else label


def letter_parts(key: str, letters: TokenLetterRates, occurrences: str) -> list[str]:
    parts = [f"its letter's main latent {latent_link(key, letters.main_latent)} fires on "
             f"{percent(letters.main_fire_rate)} of its {occurrences}"]
    others = [(lat, rate) for lat, rate in zip(letters.split_latents, letters.split_fire_rates)
              if lat != letters.main_latent]
    if others:
        named = ", ".join(f"{latent_link(key, lat)} on {percent(rate)}" for lat, rate in others)
        parts.append(f"split latent{'s' if len(others) > 1 else ''} {named} (any split latent: "
                     f"{percent(letters.any_split_fire_rate)})")
    return parts


def running_text_line(key: str, token: str, found: TokenRunningText | None, letters: TokenLetterRates | None,
                      absorber_latent: int | None) -> str:
    """“in running text: main latent fires on x % of its y occurrences; latent N fires on z %”."""
    if found is None:
        return "in running text: does not occur in its dashboard corpus"
    occurrences = occurrences_text(key, token, found.n_occurrences)
    parts = letter_parts(key, letters, occurrences) if letters is not None else [occurrences]
    shown = {letters.main_latent, *letters.split_latents} if letters is not None else set()
    if absorber_latent is not None and absorber_latent not in shown:
        rate = found.fire_rate(absorber_latent)
        parts.append(f"the absorber {latent_link(key, absorber_latent)} "
                     + (f"fires on {percent(rate)}" if rate is not None else "is not among its top latents there"))
        shown.add(absorber_latent)
    if found.latents and found.latents[0] not in shown:
        parts.append(f"latent {latent_link(key, found.latents[0])} fires most (on {percent(found.fire_rates[0])}, "
                     f"mean activation {found.mean_acts[0]:.1f})")
    return "in running text: " + "; ".join(parts)


def prompt_line(records: list[dict]) -> tuple[str, int | None]:
    """“in the prompt: absorbed by latent N” from the SAE's rows for the word, and the absorbing latent."""
    key = records[0]["sae_key"]
    by_metric = {r["metric"]: r for r in records}
    for metric, label in (("projection", None), ("ablation", verdicts.PAPER)):
        row = by_metric.get(metric)
        if row is None or not (row["is_full_absorption"] or (row["absorption_fraction"] or 0) > 0
                               or row["is_absorption"]):
            continue
        found = absorber(row)
        status = label or absorption_status(row, None)
        if found is None:
            return f"in the prompt: {status}", None
        line = f"in the prompt: {status} by latent {latent_link(key, found[0])}"
        if found[0] == int(row["main_latent"]):
            line += ", " + verdicts.main_latent_as_absorber(task_class_label(row))
        return line, found[0]
    return (f"in the prompt: not absorbed (its letter's main latent {latent_link(key, int(records[0]['main_latent']))} "
            "carries it)"), None


def task_class_label(row: dict) -> str:
    """The word's class as the page names it (`S` for a first letter, the class name otherwise)."""
    letter = str(row.get("letter") or "")
    return letter.upper() if len(letter) == 1 else letter


def by_sae(records: list[dict]) -> dict[str, list[dict]]:
    """Records grouped by their SAE, in first-seen order (one conversion of the frame, not one per SAE)."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["sae_key"], []).append(record)
    return groups


def render_per_sae(token: str, token_id: int, absorption: pd.DataFrame | None, reasons: dict[str, str],
                   default_reason: str) -> None:
    """One line per SAE of the model: the prompt's verdict, then how the token fares in running text."""
    st.markdown("**In the prompt and in running text, per SAE**")
    rows = by_sae(ui.records(absorption)) if absorption is not None else {}
    running = {r.sae_key: r for r in reads.token_running_text(model_name, token_id)} if HAS_RUNNING_TEXT else {}
    letters = ({r.sae_key: r for r in reads.token_letter_rates(model_name, token_id)}
               if HAS_RUNNING_TEXT and reads.has_token_letters() else {})
    lines = []
    saes = common.saes_frame()
    for key in saes.loc[saes["model_name"] == model_name, "sae_key"]:
        if key in rows:
            prompt, absorbing = prompt_line(rows[key])
        else:
            prompt, absorbing = f"in the prompt: {reasons.get(key, default_reason)}", None
        running_text = (running_text_line(key, token, running.get(key), letters.get(key), absorbing)
                        if key in RUNNING_TEXT_SAES else f"in running text: {NOT_COMPUTED}")
        lines.append(f"- `{key}` — {prompt} · {running_text}")
    st.markdown("\n".join(lines))
    st.caption("Running text: the SAE's dashboard corpus, every occurrence of the token. Fire rate: the share of its "
               "occurrences where the latent is active. The occurrence counts open Browse on the token: the latents "
               "that fire most on it, and where it occurs.")


# --- any other string: its tokens, what can be measured of them, the nearest task words --------------------
def vocabulary_tokenization(text: str) -> list[tuple[int | None, str]]:
    """Longest match over the stored vocabulary, left to right (BPE may split differently); characters no token
    starts with are kept with id None."""
    pieces: list[tuple[int | None, str]] = []
    rest = text
    while rest:
        found = reads.longest_vocab_prefix(model_name, rest)
        if found is None:
            pieces.append((None, rest[0]))
            rest = rest[1:]
        else:
            pieces.append(found)
            rest = rest[len(found[1]):]
    return pieces


def tokenization(text: str) -> tuple[list[tuple[int | None, str]], str | None]:
    """`text` as the model's tokenizer splits it, or, when that tokenizer cannot be loaded here, as the stored
    vocabulary allows; with a note saying which."""
    from live.tokenizer import TokenizerUnavailable, tokenize  # only for a string that is not a vocabulary word

    try:
        return tokenize(model_name, text), None
    except TokenizerUnavailable as error:
        reason = str(error)
    except Exception as error:  # noqa: BLE001 - a failing tokenizer must not take the page down
        reason = f"The tokenizer of `{model_name}` failed on this text ({type(error).__name__})."
    return vocabulary_tokenization(text), (f"{reason} Split here by longest match over the stored vocabulary instead "
                                           "(an approximation: the model's tokenizer may split it differently).")


def token_link(token: str) -> str | None:
    """A token-page URL for the token, when it is a word of the task (the page has its verdict)."""
    if not HAS_PROBES or not token.strip() or reads.probe_words_by_text(model_name, token.strip()).empty:
        return None
    return ui.token_url(sae_key, token)


def pieces_table(forms: dict[str, list[tuple[int | None, str]]]) -> pd.DataFrame:
    """One row per token of each form, with what the sidebar SAE's running text says about it."""
    ids = [t for pieces in forms.values() for t, _ in pieces if t is not None]
    running = reads.tokens_running_text(sae_key, tuple(ids)) if sae_key in RUNNING_TEXT_SAES else {}
    rows = []
    for form, pieces in forms.items():
        for position, (token_id, text) in enumerate(pieces, start=1):
            found = running.get(token_id) if token_id is not None else None
            top = found.latents[0] if found is not None and found.latents else None
            row = {"form": form, "#": position, "token": repr(text), "id": token_id,
                   "task word": token_link(text) if token_id is not None else None}
            if sae_key in RUNNING_TEXT_SAES:
                row.update({"occurrences": found.n_occurrences if found is not None else 0,
                            "top latent": ui.latent_url(sae_key, top) if top is not None else None,
                            "its fire rate": found.fire_rates[0] if top is not None else None,
                            "examples": examples_url(sae_key, text) if found is not None else None})
            rows.append(row)
    return pd.DataFrame(rows)


def render_pieces(word: str) -> list[tuple[int | None, str]]:
    """How the model splits the word, mid-sentence (after a space) and at the start of a text. Returns the
    mid-sentence tokens."""
    forms: dict[str, list[tuple[int | None, str]]] = {}
    notes = []
    for form, text in ((f"mid-sentence ({' ' + word!r})", " " + word), (f"at the start ({word!r})", word)):
        pieces, note = tokenization(text)
        if pieces not in forms.values():
            forms[form] = pieces
        if note and note not in notes:
            notes.append(note)
    st.markdown("**How the model splits it**")
    for form, pieces in forms.items():
        shown = " · ".join(repr(text) for _, text in pieces)
        st.caption(f"{form}: {len(pieces)} token{'' if len(pieces) == 1 else 's'}: {shown}")
    for note in notes:
        st.caption(note)
    table = pieces_table(forms)
    config = {"task word": st.column_config.LinkColumn("task word", display_text="open →",
                                                       help="The token is a word of the first-letter task: its page"),
              "top latent": st.column_config.LinkColumn("top latent", display_text=r"latent=(\d+)",
                                                        help=f"The latent that fires most on the token in `{sae_key}`'s "
                                                             "running text (highest mean activation)"),
              "its fire rate": st.column_config.NumberColumn(format="percent"),
              "examples": st.column_config.LinkColumn("examples", display_text="where it occurs →")}
    st.dataframe(table, hide_index=True, width="stretch", column_config=config, key="token_pieces")
    st.caption(f"Occurrences and top latent: in the running text of `{sae_key}` (the sidebar SAE)."
               if sae_key in RUNNING_TEXT_SAES else
               f"Running text of `{sae_key}` (occurrences, the latents that fire on each token): {NOT_COMPUTED}.")
    return next(iter(forms.values()))


def render_first_token(word: str, pieces: list[tuple[int | None, str]]) -> None:
    """A word of several tokens: the model reads its first letter from its first token."""
    if len(pieces) < 2 or pieces[0][0] is None:
        return
    first = pieces[0][1]
    if token_link(first) is not None:
        st.markdown(f"Its first letter is the first letter of its first token {first!r}, a word of the task:")
        common.page_link("token", f"{first.strip()} →", sae=sae_key, token=first.strip())
    elif HAS_PROBES:
        st.caption(f"Its first token {first!r} is not a word of the task, so its first letter is not measured in the "
                   "prompt; its running text is in the table above.")


def render_other_string(word: str) -> None:
    """Anything that is not a word of the task: what it is, what can be measured, where to go next."""
    in_vocab = reads.vocab_tokens_by_text(model_name, word)
    if in_vocab.empty:
        st.error(f"“{word}” is not a single-token alphabetic word of `{model_name}`'s vocabulary. The first-letter "
                 "task only uses tokens that are a whole word of ASCII letters (with or without one leading space): "
                 "words the tokenizer splits into several tokens, and tokens with digits or punctuation, are not "
                 "measured in the prompt. Matching is case-sensitive. Below: its tokens, what running text says "
                 "about them, and the nearest words of the task.")
    else:
        forms = list(dict.fromkeys(f"`{t!r}`" for t in in_vocab["token"]))  # byte tokens may print alike
        tokens = ", ".join(forms[:5]) + (f" and {len(forms) - 5} more" if len(forms) > 5 else "")
        task = (" but not a word of the first-letter task: it is not a single-token alphabetic word (only ASCII "
                "letters, with an optional leading space), or its prompt did not tokenize as prefix + word + "
                "template and it was dropped" if HAS_PROBES else "")
        st.info(f"“{word}” is a token of `{model_name}` ({tokens}){task}.")
        for record in ui.records(in_vocab)[:2]:
            with st.container(border=True):
                st.markdown(f"Token {record['token']!r} · id {int(record['token_id'])}")
                render_per_sae(record["token"], int(record["token_id"]), None, {},
                               "not a word of the task" if HAS_PROBES else "no probe data")
    pieces = render_pieces(word)
    render_first_token(word, pieces)
    if HAS_PROBES:
        suggestion_links(reads.nearest_task_words(model_name, word, N_NEAREST),
                         "The nearest words of the task (by spelling):")


if word is None:
    if HAS_PROBES:
        suggestion_links(reads.absorbed_examples(sae_key, N_SUGGESTIONS),
                         f"Type a word, or try one whose first letter `{sae_key}` fully absorbed:")
    else:
        st.caption("Type a token, e.g. one you saw in a latent's contexts.")
    st.stop()

if HAS_PROBES:
    completions = [w for w in reads.vocabulary_completions(model_name, word, N_SUGGESTIONS + 1) if w != word]
    suggestion_links(completions[:N_SUGGESTIONS], "Task words starting with what you typed:")

matches = reads.probe_words_by_text(model_name, word) if HAS_PROBES else pd.DataFrame()
if matches.empty:
    render_other_string(word)
    st.stop()


def fired(values: list[float]) -> str:
    return f"{sum(1 for v in values if v > 1e-8)}/{len(values)}"


def split_text(latents: list[int], acts: list[float]) -> str:
    return ", ".join(f"{int(lat)}: {act:.2f}" for lat, act in zip(latents, acts))


def absorption_status(projection: dict | None, ablation: dict | None) -> str:
    """At a glance: was the word's first letter absorbed in this SAE, and under which metric (backend/verdicts.py)."""
    return verdicts.word_verdict(projection, ablation)


def sae_rows(frame: pd.DataFrame, task: TaskInfo, token: str) -> pd.DataFrame:
    """One row per SAE (of one task): its size, whether it absorbed the word, its projection row and (when sampled)
    its ablation row side by side."""
    rows = []
    for key, group in by_sae(ui.records(frame)).items():
        by_metric = {r["metric"]: r for r in group}
        # the row that has the word's activations (an ablation row, when the projection row was not stored)
        first = next((r for r in by_metric.values() if r["split_acts"] is not None), next(iter(by_metric.values())))
        split = [int(x) for x in first["split_latents"]]
        # a not-absorbed word's projection row is not stored (fraction 0): its activations are unknown here
        acts = None if first["split_acts"] is None else [float(x) for x in first["split_acts"]]
        main = int(first["main_latent"])
        main_act = acts[split.index(main)] if acts is not None and main in split else None
        projection, ablation = by_metric.get("projection"), by_metric.get("ablation")
        row = {"SAE": key, "layer": first["layer"], "width": first["d_sae"], "L0": first["l0"],
               "architecture": first["training_architecture"], "absorbed": absorption_status(projection, ablation),
               "absorber": None, task.class_noun: task.class_label(first["letter"]), "main latent": main,
               "main act": main_act, "split latents fired": fired(acts) if acts is not None else "—",
               "split acts": split_text(split, acts) if acts is not None else "not stored (not absorbed)",
               "P": first["probe_projection"], "fold": first["fold"],
               "split latents stable": split_stability_text(first), "probe run": first["probe_run_id"]}
        if projection is not None:
            row.update({"absorption fraction": projection["absorption_fraction"],
                        "full absorption": projection["is_full_absorption"]})
            if projection["is_full_absorption"] or (projection["absorption_fraction"] or 0) > 0:
                found = absorber(projection)
                row.update(absorber_columns(key, "", found, projection, task.task))
        row["paper absorption"] = ("not sampled" if ablation is None else
                                   "absorbed" if ablation["is_absorption"] else "not absorbed")
        row["spelling check"] = ui.spell_url(key, token, task.task)
        if ablation is not None and ablation["is_absorption"]:
            found = absorber(ablation)
            row.update(absorber_columns(key, "ablation ", found, ablation, task.task))
        rows.append(row)
    return pd.DataFrame(rows)


def split_stability_text(record: dict) -> str:
    """Whether the letter's split latents are the same in every fold (else the word's verdict depends on
    which fold it fell in: flagged)."""
    stability = record.get("split_stability")
    if stability is None or stability >= 1:
        return "yes"
    return f"no: {stability:.0%} of folds agree †"


def absorber_columns(key: str, prefix: str, found, record: dict, task: str) -> dict:
    if found is None:
        return {}
    latent, act, score = found
    density = record.get("absorber_density")
    return {f"{prefix}absorber": ui.latent_url(key, latent, task),
            f"{prefix}absorber label": ui.latent_labels(key, [latent]).get(int(latent), ""),
            f"{prefix}absorber cos": record["absorber_cos"],
            f"{prefix}absorber act": act, f"{prefix}absorber score": score, f"{prefix}absorber density": density,
            f"{prefix}dense absorber": is_dense_absorber(density)}


def hook_status(match: dict) -> str | None:
    """Why the word is not measured at this hook, or None when it is (a test word the probe gets right)."""
    if not match["is_test"]:
        return "probe-training word"
    if match["probe_logit"] <= 0:
        return "the probe missed it"
    return None


def measured_text(match: dict) -> str:
    """How the word's verdict at this hook was obtained: its fold (cross-fitting) or SAEBench's 80/20 split."""
    if not match["is_test"]:
        return "probe-training word (SAEBench's 80/20 split: not measured)"
    if match.get("split_mode") == "crossfit":
        return f"fold {int(match['fold'])} of {int(match['n_folds'])} (its probe was fitted on the other folds)"
    return "held-out test word (SAEBench's 80/20 split)"


def render_hook(match: dict) -> None:
    """The word's probe verdict and prompt at one hook (each hook has its own probe)."""
    st.caption(f"hook `{match['hook_name']}` · probe run `{match['probe_run_id']}` · probe logit {match['probe_logit']:.2f} · "
               + measured_text(match)
               + ("" if match["model_correct"] is None else
                  f" · the model answers {'right' if match['model_correct'] else 'wrong'}"))
    # (inside the task's folded details: an expander here would nest, which Streamlit refuses)
    if match["prefix_text"] is not None and match["prompt_template"] is not None:
        st.code(match["prefix_text"] + match["prompt_template"].format(word=match["token"]), language=None, height=120)
        st.caption(f"The prompt at `{match['hook_name']}`. The activation is read at the word's token; the model's "
                   "answer would follow the colon.")
    else:
        st.caption("The prompt is not stored.")


def hooks_text(matches: list[dict], all_matches: list[dict]) -> str:
    return "" if len(matches) == len(all_matches) else " at " + ", ".join(f"`{m['hook_name']}`" for m in matches)


def explain_unmeasured(token: str, label: str, matches: list[dict]) -> None:
    training = [m for m in matches if not m["is_test"]]
    missed = [m for m in matches if m["is_test"] and m["probe_logit"] <= 0]
    if training:
        st.info(f"{token!r} is a probe-training word{hooks_text(training, matches)}: the probe was fitted on it, so "
                "absorption is not measured on it. This probe run used SAEBench's 80/20 split (a holdout build); a "
                "cross-fitted build (the default) measures every word out of fold.")
    if missed:
        logits = ", ".join(f"{m['probe_logit']:.2f}" for m in missed)
        st.warning(f"The probe missed {token!r}{hooks_text(missed, matches)} (its logit for “{label}” is "
                   f"{logits} ≤ 0). Absorption is measured only on words the probe gets right (the SAE should then "
                   "have found the feature too), so no SAE there has a row for it.")


def other_saes_note(shown: set[str], matches: list[dict], task: str) -> None:
    """Why the model's other SAEs are not in the table: one row per SAE that measured the word."""
    reasons: dict[str, list[str]] = {}
    for key, reason in unmeasured_reasons(shown, matches, task).items():
        reasons.setdefault(reason, []).append(key)
    if reasons:
        st.caption("Not in the table: " + "; ".join(f"{', '.join(f'`{k}`' for k in keys)} ({reason})"
                                                   for reason, keys in reasons.items()) + ".")


def unmeasured_reasons(shown: set[str], matches: list[dict], task: str) -> dict[str, str]:
    """For each SAE of the model not in `shown`, why it has no row for the word in the task."""
    saes = common.saes_frame()
    summaries = reads.all_sae_absorption(task)
    run_of = dict(zip(summaries["sae_key"], summaries["probe_run_id"]))  # the probe run each SAE was measured against
    status = {m["probe_run_id"]: hook_status(m) for m in matches}
    reasons: dict[str, str] = {}
    for other in ui.records(saes[saes["model_name"] == model_name]):
        if other["sae_key"] in shown:
            continue
        run = run_of.get(other["sae_key"])
        if run is None:
            reason = ("no absorption measurements" if task == DEFAULT_TASK
                      else "no absorption measurements on this task")
        elif run not in status:
            reason = "not a word of the task in the probe run it was measured against"
        elif status[run]:
            reason = f"not measured in its probe run: {status[run]}"
        else:
            reason = "no row for this word"
        reasons[other["sae_key"]] = reason
    return reasons


def class_text(task: TaskInfo, letter: str) -> str:
    """“letter T”, or “Semantic category (WordNet): animal”."""
    return f"letter {task.class_label(letter)}" if task.is_letters else f"{task.title}: {letter}"


def by_task(matches: list[dict]) -> dict[str, list[dict]]:
    """A token's matches (one per task and hook) grouped by task, in the query's order (first_letter first)."""
    groups: dict[str, list[dict]] = {}
    for match in matches:
        groups.setdefault(match["task"], []).append(match)
    return groups


def measured_frame(task: TaskInfo, matches: list[dict], absorption: pd.DataFrame) -> pd.DataFrame:
    """The word's absorption rows in one task, from the probe runs that measured it (a held-out word the probe got)."""
    runs = [m["probe_run_id"] for m in matches if hook_status(m) is None]
    return absorption[(absorption["task"] == task.task) & absorption["probe_run_id"].isin(runs)]


def sae_verdict(records: list[dict]) -> tuple[str, int | None]:
    """One SAE's verdict on the word in one task (backend/verdicts.py) and its absorber, as a matrix cell."""
    by_metric = {r["metric"]: r for r in records}
    projection, ablation = by_metric.get("projection"), by_metric.get("ablation")
    verdict = verdicts.word_verdict(projection, ablation)
    absorbing = None
    for row in (projection, ablation):
        if row is not None and (row["is_full_absorption"] or (row["absorption_fraction"] or 0) > 0 or row["is_absorption"]):
            found = absorber(row)
            absorbing = found[0] if found is not None else None
            break
    first = records[0]
    unstable = first.get("split_stability") is not None and first["split_stability"] < 1
    return (verdicts.matrix_cell(verdict, absorbing, absorbing is not None and absorbing == int(first["main_latent"]),
                                 unstable), absorbing if verdict != verdicts.NOT_ABSORBED else None)


def render_verdicts(token_id: int, tasks: dict[str, list[dict]], absorption: pd.DataFrame) -> None:
    """The answer first: a line per task (absorbed in how many SAEs, by which latents), then the SAEs x tasks matrix."""
    saes = common.saes_frame()
    keys = saes.loc[saes["model_name"] == model_name, "sae_key"].tolist()
    columns: dict[str, dict[str, str]] = {}
    label_columns: set[str] = set()
    lines = []
    for name, task_matches in tasks.items():
        task = ui.task_info(name)
        label = class_text(task, task_matches[0]["letter"])
        cells, absorbers, absorber_labels = {}, {}, {}
        for key, records in by_sae(ui.records(measured_frame(task, task_matches, absorption))).items():
            cells[key], absorbing = sae_verdict(records)
            if not cells[key].startswith(verdicts.NOT_ABSORBED):
                absorbers[key] = absorbing
                if absorbing is not None:  # what the absorber is, from its top tokens
                    absorber_labels[key] = ui.latent_labels(key, [absorbing]).get(absorbing, "")
        lines.append(verdicts.absorbed_summary(label[:1].upper() + label[1:],
                                               absorbers, len(cells)))
        title = f"{task.title}: {task.class_label(task_matches[0]['letter'])}"
        columns[title] = cells
        if any(absorber_labels.values()):
            label_column = f"{task.title.split(' (')[0].lower()} absorber's label"
            label_columns.add(label_column)
            columns[label_column] = absorber_labels
    st.markdown("\n".join(f"- **{line}**" for line in lines))
    matrix = pd.DataFrame({"SAE": keys, **{title: [cells.get(key, "" if title in label_columns else "— not measured")
                                                   for key in keys] for title, cells in columns.items()}})
    st.dataframe(matrix, hide_index=True, width="stretch", key=f"token_verdicts_{token_id}")
    st.caption("fully absorbed: the class's split latents stay silent and another latent carries the class; partly: "
               "a share of the probe projection is carried outside them; by N: the absorbing latent, then its label "
               "(its top tokens by activation mass); "
               f"{verdicts.UNSTABLE_MARK}: the class's split latents change between folds.")


def render_word(matches: list[dict]) -> None:
    """One token: the verdict in every task and SAE first (a line per task, then a matrix); per task, the prompts,
    the per-SAE table and the running text folded away."""
    first = matches[0]
    token, token_id = first["token"], int(first["token_id"])
    tasks = by_task(matches)
    summary = " · ".join(class_text(ui.task_info(name), group[0]["letter"]) for name, group in tasks.items())
    st.subheader(f"Token {token!r} · id {token_id} · {summary}")
    frame = reads.token_absorption(model_name, token_id)
    render_verdicts(token_id, tasks, frame)
    for name, task_matches in tasks.items():
        task = ui.task_info(name)
        with st.expander(f"{task.title}: prompts, the per-SAE table and running text"):
            render_task(task, token, token_id, task_matches, frame, len(tasks) > 1)


def render_task(task: TaskInfo, token: str, token_id: int, matches: list[dict], absorption: pd.DataFrame,
                headed: bool) -> None:
    """The token in one task: its class's probe verdict at every hook, and its verdict in every SAE measured."""
    letter = matches[0]["letter"]
    label = task.class_label(letter)
    if headed:
        st.markdown(f"#### {task.title}: {task.class_noun} {label}")
        st.caption(task.description)
    for match in matches:
        render_hook(match)
    explain_unmeasured(token, label, matches)
    runs = [m["probe_run_id"] for m in matches if hook_status(m) is None]
    hooks = sorted({m["hook_name"] for m in matches if hook_status(m) is None})
    frame = measured_frame(task, matches, absorption)
    if task.is_letters:  # running text is measured for the first-letter task
        render_per_sae(token, token_id, frame, unmeasured_reasons(set(frame["sae_key"]), matches, task.task),
                       "no row for this word")
    if not runs:
        return
    if frame.empty:
        st.info(f"No SAE at {', '.join(f'`{h}`' for h in hooks)} in this database has absorption rows for {token!r}"
                + ("." if task.is_letters else f" on the task {task.title}."))
        return
    table = sae_rows(frame, task, token)
    number = st.column_config.NumberColumn(format="%.3f")
    config = {name: number for name in table.columns if name.endswith((" act", " cos", " score", "fraction")) or name == "P"}
    config["L0"] = st.column_config.NumberColumn(format="%.1f")
    config.update({name: st.column_config.NumberColumn(format="%.4f") for name in table.columns
                   if name.endswith("absorber density")})
    config["spelling check"] = st.column_config.LinkColumn(
        "spelling check", display_text="ablate it →",
        help="The task's own prompt for the word on the Live page, with the absorber, the main latent and a control "
             "latent ablated at the word: does the model still answer?")
    for prefix in ("", "ablation "):
        if f"{prefix}absorber" in table.columns:
            config[f"{prefix}absorber"] = st.column_config.LinkColumn(
                f"{prefix}absorber", display_text=r"latent=(\d+)",
                help="The top non-split latent by projection (or by attribution for the ablation metric), "
                     "when the word was absorbed. " + provenance.help_for(
                         "absorption_words.absorber" if not prefix else "absorption_words.is_absorption"))
    st.dataframe(table, hide_index=True, width="stretch", column_config=config,
                 key=f"token_table_{token_id}" if task.is_letters else f"token_table_{token_id}_{task.task}")
    noun = task.class_noun
    st.caption(f"One row per SAE that measured this word. absorbed: fully (split latents silent, one latent carries "
               f"the {noun}), partly (share of the probe projection carried by non-split latents) or by the paper's "
               f"ablation test. split latents fired: how many of the {noun}'s split latents were active on this word "
               "(> 1e-8). absorber score: activation × probe cosine (projection) or attribution (ablation, most "
               f"negative first). absorber density: share of all tokens it fires on; dense (≥ {DENSE_ABSORBER:.0%}): a "
               "general latent carrying the direction, not a token-aligned absorber.")
    other_saes_note(set(table["SAE"]), matches, task.task)
    for key in table["SAE"]:
        text = class_text(task, letter)
        common.page_link("letter", f"{text[0].upper()}{text[1:]} in {key} →", sae=key,
                         **ui.class_params(task.task, letter))


def by_token(matches: pd.DataFrame) -> list[list[dict]]:
    """The matches grouped by token (one entry per hook), measured (test) words first."""
    groups: dict[int, list[dict]] = {}
    for match in ui.records(matches):
        groups.setdefault(int(match["token_id"]), []).append(match)
    return sorted(groups.values(), key=lambda group: not any(m["is_test"] for m in group))


def form_label(token_matches: list[dict]) -> str:
    return f"{token_matches[0]['token']!r} · id {int(token_matches[0]['token_id'])}"


forms = by_token(matches)
# several tokens spell the word (' snake' starts a word, 'snake' continues one): a tab each, the measured one first,
# so the page is as tall as one form's answer
for tab, token_matches in zip(st.tabs([form_label(f) for f in forms]) if len(forms) > 1 else [st.container()], forms):
    with tab, st.container(border=True):
        render_word(token_matches)
