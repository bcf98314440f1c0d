"""Token search: one word across every SAE — did the letter latents fire, or was its first letter absorbed?"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.database import absorber
from backend.params import ParamError, parse_word
from views import absorption_ui as ui
from views import common

N_SUGGESTIONS = 12

db = common.get_db()
sae = common.current_sae()
sae_key, model_name = sae["sae_key"], sae["model_name"]
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
ui.caveat(sae)
ui.explainer()

st.session_state["token_input"] = word or ""  # the URL is the source of truth; the widget follows it
st.text_input("word", key="token_input", on_change=on_word_entered, placeholder="e.g. snake",
              help="One token of the model's vocabulary, with or without its leading space; case-sensitive. "
                   "The choice is kept in the URL (?token=).")

if not ui.cached("has_absorption_tables") or ui.cached("probe_run_count", model_name) == 0:
    st.info(f"This database holds no first-letter probe data for `{model_name}`: nothing to look up.")
    st.stop()


def suggestion_links(words: list[str], label: str) -> None:
    if not words:
        return
    st.caption(label)
    cols = st.columns(min(len(words), 6))
    for i, suggestion in enumerate(words):
        with cols[i % len(cols)]:
            common.page_link("token", suggestion, sae=sae_key, token=suggestion)


if word is None:
    suggestion_links(ui.cached("absorbed_examples", sae_key, N_SUGGESTIONS),
                     f"Type a word, or try one whose first letter `{sae_key}` fully absorbed:")
    st.stop()

completions = [w for w in ui.cached("vocabulary_completions", model_name, word, N_SUGGESTIONS + 1) if w != word]
suggestion_links(completions[:N_SUGGESTIONS], "Task words starting with what you typed:")

matches = ui.cached("probe_words_by_text", model_name, word)
if matches.empty:
    in_vocab = ui.cached("vocab_tokens_by_text", model_name, word)
    if in_vocab.empty:
        st.error(f"“{word}” is not a single-token alphabetic word of `{model_name}`'s vocabulary. The first-letter "
                 "task only uses tokens that are a whole word of ASCII letters (with or without one leading space): "
                 "words the tokenizer splits into several tokens, and tokens with digits or punctuation, are not "
                 "measured. Matching is case-sensitive.")
    else:
        forms = list(dict.fromkeys(f"`{t!r}`" for t in in_vocab["token"]))  # byte tokens may print alike
        tokens = ", ".join(forms[:5]) + (f" and {len(forms) - 5} more" if len(forms) > 5 else "")
        st.error(f"“{word}” is a token of `{model_name}` ({tokens}) but not a word of the first-letter task: it is "
                 "not a single-token alphabetic word (only ASCII letters, with an optional leading space), or its "
                 "prompt did not tokenize as prefix + word + template and it was dropped.")
    st.stop()


def fired(values: list[float]) -> str:
    return f"{sum(1 for v in values if v > 1e-8)}/{len(values)}"


def split_text(latents: list[int], acts: list[float]) -> str:
    return ", ".join(f"{int(lat)}: {act:.2f}" for lat, act in zip(latents, acts))


def absorption_status(projection: dict | None, ablation: dict | None) -> str:
    """At a glance: was the word's first letter absorbed in this SAE, and under which metric."""
    parts = []
    if projection is not None and projection["is_full_absorption"]:
        parts.append("fully absorbed")
    elif projection is not None and (projection["absorption_fraction"] or 0) > 0:
        parts.append(f"partly absorbed ({projection['absorption_fraction']:.0%})")
    if ablation is not None and ablation["is_absorption"]:
        parts.append("absorbed (paper metric)")
    return "; ".join(parts) or "not absorbed"


def sae_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per SAE: its size, whether it absorbed the word, its projection row and (when sampled) its
    ablation row side by side."""
    rows = []
    for key, group in frame.groupby("sae_key", sort=False):
        by_metric = {r["metric"]: r for r in ui.records(group)}
        first = next(iter(by_metric.values()))
        split = [int(x) for x in first["split_latents"]]
        acts = [float(x) for x in first["split_acts"]]
        main = int(first["main_latent"])
        main_act = acts[split.index(main)] if main in split else None
        projection, ablation = by_metric.get("projection"), by_metric.get("ablation")
        row = {"SAE": key, "layer": first["layer"], "width": first["d_sae"], "L0": first["l0"],
               "architecture": first["training_architecture"], "absorbed": absorption_status(projection, ablation),
               "absorber": None, "letter": first["letter"].upper(), "main latent": main,
               "main act": main_act, "split latents fired": fired(acts), "split acts": split_text(split, acts),
               "P": first["probe_projection"], "probe run": first["probe_run_id"]}
        if projection is not None:
            row.update({"absorption fraction": projection["absorption_fraction"],
                        "full absorption": projection["is_full_absorption"]})
            if projection["is_full_absorption"] or (projection["absorption_fraction"] or 0) > 0:
                found = absorber(projection["top_latents"], projection["top_acts"], projection["top_scores"], split)
                row.update(absorber_columns(key, "", found, projection))
        row["paper absorption"] = ("not sampled" if ablation is None else
                                   "absorbed" if ablation["is_absorption"] else "not absorbed")
        if ablation is not None and ablation["is_absorption"]:
            found = absorber(ablation["top_latents"], ablation["top_acts"], ablation["top_scores"], split)
            row.update(absorber_columns(key, "ablation ", found, ablation))
        rows.append(row)
    return pd.DataFrame(rows)


def absorber_columns(key: str, prefix: str, found, record: dict) -> dict:
    if found is None:
        return {}
    latent, act, score = found
    cos = dict(zip((int(x) for x in record["top_latents"]), record["top_cos"]))
    return {f"{prefix}absorber": ui.latent_url(key, latent), f"{prefix}absorber cos": cos.get(latent),
            f"{prefix}absorber act": act, f"{prefix}absorber score": score}


def hook_status(match: dict) -> str | None:
    """Why the word is not measured at this hook, or None when it is (a test word the probe gets right)."""
    if not match["is_test"]:
        return "probe-training word"
    if match["probe_logit"] <= 0:
        return "the probe missed it"
    return None


def render_hook(match: dict) -> None:
    """The word's probe verdict and prompt at one hook (each hook has its own probe)."""
    st.caption(f"hook `{match['hook_name']}` · probe run `{match['probe_run_id']}` · probe logit {match['probe_logit']:.2f} · "
               + ("held-out test word" if match["is_test"] else "probe-training word")
               + ("" if match["model_correct"] is None else
                  f" · the model answers {'right' if match['model_correct'] else 'wrong'}"))
    with st.expander("Prompt", expanded=False):
        if match["prefix_text"] is not None and match["prompt_template"] is not None:
            st.code(match["prefix_text"] + match["prompt_template"].format(word=match["token"]), language=None)
            st.caption(f"At `{match['hook_name']}`. The activation is read at the word's token; the model's answer "
                       "would follow the colon.")
        else:
            st.caption("The prompt is not stored.")


def hooks_text(matches: list[dict], all_matches: list[dict]) -> str:
    return "" if len(matches) == len(all_matches) else " at " + ", ".join(f"`{m['hook_name']}`" for m in matches)


def explain_unmeasured(token: str, letter: str, matches: list[dict]) -> None:
    training = [m for m in matches if not m["is_test"]]
    missed = [m for m in matches if m["is_test"] and m["probe_logit"] <= 0]
    if training:
        st.info(f"{token!r} is a probe-training word{hooks_text(training, matches)}: the probe was fitted on it, so "
                "absorption is not measured on it. Absorption is measured only on held-out test words.")
    if missed:
        logits = ", ".join(f"{m['probe_logit']:.2f}" for m in missed)
        st.warning(f"The probe missed {token!r}{hooks_text(missed, matches)} (its logit for “{letter.upper()}” is "
                   f"{logits} ≤ 0). Absorption is measured only on words the probe gets right (the SAE should then "
                   "have found the letter too), so no SAE there has a row for it.")


def other_saes_note(shown: set[str], matches: list[dict]) -> None:
    """Why the model's other SAEs are not in the table: one row per SAE that measured the word."""
    saes = common.saes_frame()
    summaries = ui.cached("all_sae_absorption")
    run_of = dict(zip(summaries["sae_key"], summaries["probe_run_id"]))  # the probe run each SAE was measured against
    status = {m["probe_run_id"]: hook_status(m) for m in matches}
    reasons: dict[str, list[str]] = {}
    for other in ui.records(saes[saes["model_name"] == model_name]):
        if other["sae_key"] in shown:
            continue
        run = run_of.get(other["sae_key"])
        if run is None:
            reason = "no absorption measurements"
        elif run not in status:
            reason = "not a word of the task in the probe run it was measured against"
        elif status[run]:
            reason = f"not measured in its probe run: {status[run]}"
        else:
            reason = "no row for this word"
        reasons.setdefault(reason, []).append(other["sae_key"])
    if reasons:
        st.caption("Not in the table: " + "; ".join(f"{', '.join(f'`{k}`' for k in keys)} ({reason})"
                                                   for reason, keys in reasons.items()) + ".")


def render_word(matches: list[dict]) -> None:
    """One token: its verdict at every hook, then one row per SAE that measured it."""
    first = matches[0]
    token, letter, token_id = first["token"], first["letter"], int(first["token_id"])
    st.subheader(f"Token {token!r} · id {token_id} · letter {letter.upper()}")
    for match in matches:
        render_hook(match)
    explain_unmeasured(token, letter, matches)
    runs = [m["probe_run_id"] for m in matches if hook_status(m) is None]
    hooks = sorted({m["hook_name"] for m in matches if hook_status(m) is None})
    if not runs:
        return
    frame = ui.cached("token_absorption", model_name, token_id)
    frame = frame[frame["probe_run_id"].isin(runs)]
    if frame.empty:
        st.info(f"No SAE at {', '.join(f'`{h}`' for h in hooks)} in this database has absorption rows for {token!r}.")
        return
    table = sae_rows(frame)
    number = st.column_config.NumberColumn(format="%.3f")
    config = {name: number for name in table.columns if name.endswith((" act", " cos", " score", "fraction")) or name == "P"}
    config["L0"] = st.column_config.NumberColumn(format="%.1f")
    for prefix in ("", "ablation "):
        if f"{prefix}absorber" in table.columns:
            config[f"{prefix}absorber"] = st.column_config.LinkColumn(
                f"{prefix}absorber", display_text=r"latent=(\d+)",
                help="The top non-split latent by projection (or by attribution for the ablation metric), "
                     "when the word was absorbed.")
    st.dataframe(table, hide_index=True, width="stretch", column_config=config, key=f"token_table_{token_id}")
    st.caption("One row per SAE that measured this word. absorbed: fully (split latents silent, one latent carries "
               "the letter), partly (share of the probe projection carried by non-split latents) or by the paper's "
               "ablation test. split latents fired: how many of the letter's split latents were active on this word "
               "(> 1e-8). absorber score: activation × probe cosine (projection) or attribution (ablation, most "
               "negative first).")
    other_saes_note(set(table["SAE"]), matches)
    for record in table.to_dict("records"):
        common.page_link("letter", f"Letter {record['letter']} in {record['SAE']} →", sae=record["SAE"],
                         letter=record["letter"].lower())


def by_token(matches: pd.DataFrame) -> list[list[dict]]:
    """The matches grouped by token (one entry per hook), measured (test) words first."""
    groups: dict[int, list[dict]] = {}
    for match in ui.records(matches):
        groups.setdefault(int(match["token_id"]), []).append(match)
    return sorted(groups.values(), key=lambda group: not any(m["is_test"] for m in group))


for token_matches in by_token(matches):
    with st.container(border=True):
        render_word(token_matches)
