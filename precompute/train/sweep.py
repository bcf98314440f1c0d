"""An SAE sweep: one recipe file per SAE, one shared activation cache, one resumable command.

`python -m precompute sweep recipes/sweeps/smollm2-embedded.json` caches the model's activations at
every hook once (resumable by shard), then trains each recipe that has no finished folder (resumable
by sae-lens checkpoint), and measures its card. A finished SAE (`assets/saes/<name>/card.json`) is
skipped, so each one can be committed as it lands and a rerun picks up the rest.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from precompute.train.activation_cache import CACHE_ROOT, ActivationCacheSpec, build_activation_cache
from precompute.train.training import CHECKPOINT_ROOT, TrainingRecipe

CARD_ROWS = (100_000, 101_024)  # held-out corpus rows for every card (training uses rows < 60,000)


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    cache: ActivationCacheSpec
    recipe_paths: tuple[Path, ...]

    @classmethod
    def from_file(cls, path: Path) -> "Sweep":
        data = json.loads(Path(path).read_text())
        return cls(name=data["name"], description=data.get("description", ""),
                   cache=ActivationCacheSpec.from_dict(data["activation_cache"]),
                   recipe_paths=tuple(Path(p) for p in data["recipes"]))

    def recipes(self) -> list[tuple[Path, TrainingRecipe]]:
        return [(path, TrainingRecipe.from_file(path)) for path in self.recipe_paths]


def is_finished(recipe: TrainingRecipe, output_root: Path) -> bool:
    return (output_root / recipe.name / "card.json").exists()


def select_recipes(sweep: Sweep, output_root: Path, only: set[str] | None = None,
                   force: bool = False) -> list[tuple[Path, TrainingRecipe]]:
    """Recipes to train now: those named by `only` (all when None), minus finished ones unless `force`."""
    chosen = [(p, r) for p, r in sweep.recipes() if only is None or r.name in only]
    unknown = (only or set()) - {r.name for _, r in chosen}
    if unknown:
        raise ValueError(f"not in sweep {sweep.name}: {', '.join(sorted(unknown))}")
    return [(p, r) for p, r in chosen if force or not is_finished(r, output_root)]


def forget_sae(recipe: TrainingRecipe, output_root: Path) -> None:
    """--force: drop the finished folder and its checkpoints so training starts over."""
    shutil.rmtree(output_root / recipe.name, ignore_errors=True)
    shutil.rmtree(CHECKPOINT_ROOT / recipe.name, ignore_errors=True)


def check_recipe_matches_cache(recipe: TrainingRecipe, cache: ActivationCacheSpec) -> None:
    if recipe.activation_cache and recipe.hook_name not in cache.hooks:
        raise ValueError(f"{recipe.name} trains on {recipe.hook_name}, which the sweep's cache does not hold")
    if recipe.activation_cache and recipe.model_name != cache.model_name:
        raise ValueError(f"{recipe.name} is for {recipe.model_name}, the cache for {cache.model_name}")


def run_sweep(sweep: Sweep, corpus_path: Path, output_root: Path, device: str = "cpu",
              only: set[str] | None = None, force: bool = False, cache_root: Path = CACHE_ROOT,
              training_tokens: int | None = None, model=None, card_rows: tuple[int, int] = CARD_ROWS,
              log=print) -> list[Path]:
    from precompute.loading.corpus import load_corpus_rows
    from precompute.loading.model import load_model
    from precompute.train.card import measure_and_write_card
    from precompute.train.training import train_sae

    todo = select_recipes(sweep, output_root, only, force)
    if not todo:
        log(f"sweep {sweep.name}: every SAE is finished")
        return []
    for _, recipe in todo:
        check_recipe_matches_cache(recipe, sweep.cache)
    model = model if model is not None else load_model(sweep.cache.model_name, device=device)
    cache_paths: dict[str, Path] = {}
    if any(r.activation_cache for _, r in todo):
        started = time.perf_counter()
        # only the hooks the remaining recipes train on: adding one SAE must not cache the sweep's other layers
        needed = replace(sweep.cache, hooks=tuple(h for h in sweep.cache.hooks
                                                  if any(r.activation_cache and r.hook_name == h for _, r in todo)))
        cache_paths = build_activation_cache(needed, corpus_path, model, cache_root, log=log)
        log(f"activation cache ready ({time.perf_counter() - started:.0f} s this run)")
    held_out = load_corpus_rows(corpus_path)[card_rows[0]:card_rows[1]]
    written = []
    for path, recipe in todo:
        if force:
            forget_sae(recipe, output_root)
        if training_tokens:
            recipe = replace(recipe, training_tokens=training_tokens)
        started = time.perf_counter()
        folder = train_sae(recipe, corpus_path, output_root, device=device, model=model,
                           cached_activations=cache_paths.get(recipe.hook_name) if recipe.activation_cache else None)
        trained = time.perf_counter() - started
        card = measure_and_write_card(folder, model, held_out, f"{card_rows[0]}:{card_rows[1]}",
                                      recipe_path=path, model_name=recipe.model_name)
        log(f"{recipe.name}: trained in {trained:.0f} s; EV {card.explained_variance:.3f}, L0 {card.l0:.1f}, "
            f"dead {card.dead_fraction:.1%}, CE recovered {card.ce_loss_recovered:.3f}")
        written.append(folder)
    return written
