"""Which SAEs a list page shows: filters by model, layer, width, architecture and an L0 range, grouping, and
pages, all read from the URL (`?model=&layer=&width=&arch=&l0=&group=&page=`). A release such as Gemma Scope
puts hundreds of SAEs in one database; the overview and compare pages draw only one page of them in full."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

import pandas as pd

from backend.params import ParamError, parse_page, parse_text, shown

FILTER_KEYS = ("model", "hook", "layer", "width", "arch", "l0")
GROUPS = {"none": "no grouping", "model": "model", "layer": "layer", "width": "width", "arch": "architecture",
          "hook": "hook"}
GROUP_COLUMNS = {"model": "model_name", "layer": "layer", "width": "d_sae", "arch": "training_architecture",
                 "hook": "hook_name"}
PAGE_SIZE = 20  # SAEs drawn in full (cards, letter links, heatmap columns) per page
L0_RANGE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)?\s*(?:-|\.\.)\s*([0-9]+(?:\.[0-9]+)?)?\s*")


@dataclass(frozen=True)
class SAEFilter:
    """The SAEs a page lists; None = any."""

    model: str | None = None
    hook: str | None = None  # full TransformerLens hook name
    layer: int | None = None
    width: int | None = None
    arch: str | None = None  # training architecture (topk, jumprelu, batchtopk, ...)
    l0_min: float | None = None
    l0_max: float | None = None

    def apply(self, saes: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=saes.index)
        if self.model is not None:
            keep &= saes["model_name"] == self.model
        if self.hook is not None:
            keep &= saes["hook_name"] == self.hook
        if self.layer is not None:
            keep &= saes["layer"] == self.layer
        if self.width is not None:
            keep &= saes["d_sae"] == self.width
        if self.arch is not None:
            keep &= saes["training_architecture"] == self.arch
        if self.l0_min is not None:
            keep &= saes["l0"] >= self.l0_min
        if self.l0_max is not None:
            keep &= saes["l0"] <= self.l0_max
        return saes[keep]

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def params(self) -> dict[str, str]:
        """The filter as query parameters (for links that keep it)."""
        out = {key: str(value) for key, value in (("model", self.model), ("hook", self.hook),
                                                  ("layer", self.layer),
                                                  ("width", self.width), ("arch", self.arch)) if value is not None}
        if self.l0_min is not None or self.l0_max is not None:
            out["l0"] = f"{_number(self.l0_min)}-{_number(self.l0_max)}"
        return out

    def describe(self) -> str:
        parts = [f"model {self.model}" if self.model else "", f"hook {self.hook}" if self.hook else "",
                 f"layer {self.layer}" if self.layer is not None else "",
                 f"width {self.width:,}" if self.width is not None else "", f"architecture {self.arch}" if self.arch else ""]
        if self.l0_min is not None or self.l0_max is not None:
            parts.append(f"L0 {_number(self.l0_min) or '0'}–{_number(self.l0_max) or '∞'}")
        return ", ".join(p for p in parts if p) or "every SAE"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _checked(value: str | None, name: str) -> str | None:
    """The parameter stripped, or None when absent or blank; a ParamError for what no value can be."""
    text = parse_text(value, name).strip()
    return text or None


def _one_of(value: str | None, name: str, known: list[str]) -> str | None:
    text = _checked(value, name)
    if text is not None and text not in known:
        raise ParamError(f"Unknown {name} `{shown(text)}`. This database has: {', '.join(known)}.")
    return text


def _whole_number_in(value: str | None, name: str, known: list[int]) -> int | None:
    text = _checked(value, name)
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise ParamError(f"`{name}` must be a whole number, one of {', '.join(map(str, known))}; "
                         f"got `{shown(text)}`.")
    number = int(text)
    if number not in known:
        raise ParamError(f"No SAE in this database has {name} {number}; it has {', '.join(map(str, known))}.")
    return number


def parse_l0_range(value: str | None) -> tuple[float | None, float | None]:
    """`l0=16-64` (also `16..64`, `16-` and `-64`): an inclusive L0 range."""
    text = _checked(value, "l0")
    if text is None:
        return None, None
    match = L0_RANGE.fullmatch(text)
    if match is None or match.group(1) is None and match.group(2) is None:
        raise ParamError(f"`l0` must be a range such as `16-64`, `16-` or `-64`; got `{shown(text)}`.")
    low, high = (None if g is None else float(g) for g in match.groups())
    if any(x is not None and not math.isfinite(x) for x in (low, high)):
        raise ParamError(f"`l0` must be a range of finite numbers; got `{shown(text)}`.")
    if low is not None and high is not None and low > high:
        raise ParamError(f"`l0` range `{shown(text)}` is empty: its low end is above its high end.")
    return low, high


def parse_filter(params: Mapping[str, str | None], saes: pd.DataFrame) -> SAEFilter:
    """The filter a URL names, each value checked against what the database holds (a layer, width or
    architecture no SAE has is an error with the choices, not an empty page)."""
    layers = sorted({int(x) for x in saes["layer"].dropna()})
    l0_min, l0_max = parse_l0_range(params.get("l0"))
    return SAEFilter(
        model=_one_of(params.get("model"), "model", sorted(set(saes["model_name"]))),
        hook=_one_of(params.get("hook"), "hook", sorted(set(saes["hook_name"]))),
        layer=_whole_number_in(params.get("layer"), "layer", layers),
        width=_whole_number_in(params.get("width"), "width", sorted({int(x) for x in saes["d_sae"]})),
        arch=_one_of(params.get("arch"), "arch", sorted(set(saes["training_architecture"].dropna()))),
        l0_min=l0_min, l0_max=l0_max)


def parse_group(value: str | None) -> str:
    text = _checked(value, "group")
    if text is None:
        return "none"
    if text not in GROUPS:
        raise ParamError(f"`group` must be one of {', '.join(GROUPS)}; got `{shown(text)}`.")
    return text


@dataclass(frozen=True)
class Page:
    index: int  # 0-based
    count: int  # pages in all (at least 1)
    start: int
    stop: int
    requested_past_end: bool  # the URL asked for a page after the last; the last is shown

    def of(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[self.start:self.stop]


def parse_list_page(value: str | None, n_items: int, page_size: int | None = None) -> Page:
    """`?page=` (0-based) of a list of `n_items` SAEs; past the end means the last page."""
    page_size = page_size or PAGE_SIZE  # read at call time: tests shrink it to page the small databases
    requested = parse_page(value)
    count = max(1, math.ceil(n_items / page_size))
    index = min(requested, count - 1)
    return Page(index, count, index * page_size, min(n_items, (index + 1) * page_size), requested > index)


def group_summary(saes: pd.DataFrame, group: str, absorption: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per group value: how many SAEs, their width and L0 ranges, mean explained variance and (where
    measured) mean absorption fraction. `absorption` has sae_key and mean_absorption_fraction."""
    column = GROUP_COLUMNS[group]
    frame = saes if absorption is None else saes.drop(columns="mean_absorption_fraction", errors="ignore").merge(
        absorption[["sae_key", "mean_absorption_fraction"]], on="sae_key", how="left")
    rows = []
    for value, part in frame.groupby(column, sort=True, dropna=False):
        row = {GROUPS[group]: value, "SAEs": len(part),
               "widths": _span(part["d_sae"], "{:,.0f}"), "L0": _span(part["l0"], "{:.1f}"),
               "mean explained variance": float(part["explained_variance"].mean())}
        if absorption is not None:  # NaN (shown blank) for a group none of whose SAEs was measured
            row["mean absorption fraction"] = float(part["mean_absorption_fraction"].mean())
            row["measured"] = int(part["mean_absorption_fraction"].notna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _span(values: pd.Series, fmt: str) -> str:
    low, high = values.min(), values.max()
    return fmt.format(low) if low == high else f"{fmt.format(low)}–{fmt.format(high)}"


def group_filter(group: str, value: object) -> dict[str, str]:
    """Query parameters that narrow the list to one group (for the summary's links); the filter parameters are
    named like the groups."""
    if group not in GROUP_COLUMNS or value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    return {group: str(int(value)) if group in ("layer", "width") else str(value)}


def task_default_saes(comparison: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Compare's SAEs when the URL names none: those of the models measured on the task (a task such as the toy's
    labels one model's vocabulary only, so other models' SAEs can never have numbers on it), or every SAE when none is
    measured. Returns (shown, left out)."""
    measured_models = set(comparison.loc[comparison["has_absorption"].astype(bool), "model_name"])
    if not measured_models:
        return comparison["sae_key"].tolist(), []
    on_model = comparison["model_name"].isin(measured_models)
    return comparison.loc[on_model, "sae_key"].tolist(), comparison.loc[~on_model, "sae_key"].tolist()
