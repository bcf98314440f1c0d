"""Train an SAE on the embedded model (or any TransformerLens model) with sae-lens's own runner.

A recipe is one JSON file (see `recipes/saes/`). Training is resumable: sae-lens checkpoints are
written under `data/checkpoints/<name>/<recipe fingerprint>/` and a rerun of the same recipe picks
up the newest one (an edited recipe starts over instead of resuming another configuration's state).
The finished SAE is written in sae-lens's folder format (`cfg.json` + `sae_weights.safetensors`), in fp16, to
`assets/saes/<name>/`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from precompute.loading.model import load_model

CHECKPOINT_ROOT = Path("data/checkpoints")
TRAINER_STATE_FILE = "trainer_state.pt"


@dataclass(frozen=True)
class TrainingRecipe:
    name: str
    model_name: str
    hook_name: str  # full TransformerLens hook name, e.g. "blocks.6.hook_resid_post"
    architecture: str = "topk"  # "topk" | "batchtopk" | "matryoshka_batchtopk" | "jumprelu" | "standard"
    d_sae: int = 4096
    k: int = 32  # target L0 for TopK/BatchTopK/Matryoshka
    # Matryoshka: the nested prefixes of latents that must each reconstruct the input alone (the last is d_sae);
    # an inner prefix cannot leave a general feature to a later latent, which is the claimed cure for absorption
    matryoshka_widths: tuple[int, ...] = ()
    l1_coefficient: float = 5.0  # standard (L1) SAEs only
    l0_coefficient: float = 1.0  # JumpReLU only
    target_l0: float | None = None  # JumpReLU: set -> sae-lens's "quadratic" L0 loss pulls L0 to this target
    l0_warm_up_steps: int = 0  # JumpReLU: the L0 loss ramps up over these steps (an untrained SAE fires ~half its latents)
    jumprelu_init_threshold: float = 0.01  # JumpReLU: Adam moves the threshold ~lr per step, so a short run needs a fair start
    jumprelu_ste_to_input: bool = False  # JumpReLU: True also sends the L0 gradient to the encoder (Anthropic's setup),
    # which lowers L0 far faster than the threshold alone can in a ~1,200-step CPU run
    pre_act_loss_coefficient: float | None = None  # JumpReLU: Anthropic's pre-activation loss (3e-6) revives dead latents
    normalize_activations: str = "none"  # "expected_average_only_in": sae-lens scales inputs to norm sqrt(d_in)
    # during training and folds the factor back into the saved weights
    training_tokens: int = 5_000_000
    train_batch_size_tokens: int = 4096
    context_size: int = 128
    lr: float = 5e-4
    lr_warm_up_steps: int = 50
    lr_decay_steps: int = 250
    n_batches_in_buffer: int = 34  # must be >= 33 for 4096-token batches at context 128
    store_batch_size_prompts: int = 32
    dead_feature_window: int = 50  # steps without firing before TopK's auxiliary loss revives a latent;
    # sae-lens's default (1000) exceeds a 5 M-token run's ~1,200 steps, leaving ~75 % of latents dead.
    seed: int = 42
    corpus_rows: tuple[int, int] = (0, 60_000)  # training rows of the corpus; dashboards use rows after these
    activation_cache: bool = False  # train from a sweep's shared activation cache instead of running the model
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> "TrainingRecipe":
        data = json.loads(Path(path).read_text())
        data["corpus_rows"] = tuple(data.get("corpus_rows", (0, 60_000)))
        data["matryoshka_widths"] = tuple(data.get("matryoshka_widths", ()))
        return cls(**data)

    @property
    def layer(self) -> int:
        return int(self.hook_name.split(".")[1])


def sae_training_config(recipe: TrainingRecipe, d_in: int):
    from sae_lens import (
        BatchTopKTrainingSAEConfig,
        JumpReLUTrainingSAEConfig,
        MatryoshkaBatchTopKTrainingSAEConfig,
        StandardTrainingSAEConfig,
        TopKTrainingSAEConfig,
    )

    common = dict(d_in=d_in, d_sae=recipe.d_sae, dtype="float32", device="cpu",
                  normalize_activations=recipe.normalize_activations)
    if recipe.architecture == "topk":
        return TopKTrainingSAEConfig(k=recipe.k, **common)
    if recipe.architecture == "batchtopk":
        return BatchTopKTrainingSAEConfig(k=recipe.k, **common)
    if recipe.architecture == "matryoshka_batchtopk":
        if not recipe.matryoshka_widths or recipe.matryoshka_widths[-1] != recipe.d_sae:
            raise ValueError(f"{recipe.name}: matryoshka_widths must end with d_sae ({recipe.d_sae})")
        return MatryoshkaBatchTopKTrainingSAEConfig(k=recipe.k, matryoshka_widths=list(recipe.matryoshka_widths),
                                                    **common)
    if recipe.architecture == "jumprelu":
        loss_mode = {"jumprelu_sparsity_loss_mode": "quadratic", "target_l0": recipe.target_l0} if recipe.target_l0 else {}
        return JumpReLUTrainingSAEConfig(l0_coefficient=recipe.l0_coefficient, l0_warm_up_steps=recipe.l0_warm_up_steps,
                                         jumprelu_init_threshold=recipe.jumprelu_init_threshold,
                                         jumprelu_ste_to_input=recipe.jumprelu_ste_to_input,
                                         pre_act_loss_coefficient=recipe.pre_act_loss_coefficient, **loss_mode, **common)
    if recipe.architecture == "standard":
        return StandardTrainingSAEConfig(l1_coefficient=recipe.l1_coefficient, **common)
    raise ValueError(f"unknown architecture {recipe.architecture!r}")


def recipe_fingerprint(recipe: TrainingRecipe) -> str:
    """Short hash of every recipe field: a checkpoint is resumed only by the recipe that wrote it."""
    text = json.dumps(asdict(recipe), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def checkpoint_dir(recipe: TrainingRecipe) -> Path:
    return CHECKPOINT_ROOT / recipe.name / recipe_fingerprint(recipe)


def latest_checkpoint(recipe: TrainingRecipe) -> Path | None:
    """The newest complete sae-lens checkpoint of this exact recipe (a folder killed mid-save has no trainer state)."""
    states = sorted(
        checkpoint_dir(recipe).glob(f"*/*/{TRAINER_STATE_FILE}"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
    )
    return states[-1].parent if states else None


def runner_config(recipe: TrainingRecipe, d_in: int, device: str, resume_from: Path | None,
                  cached_activations: Path | None = None):
    """sae-lens runner config. With `cached_activations` (a folder from `activation_cache`) the runner reads
    activations from disk; the cache already dropped position 0, so its context is one shorter."""
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig

    n_steps = recipe.training_tokens // recipe.train_batch_size_tokens
    if cached_activations is not None:
        spec = json.loads((cached_activations / "cache_spec.json").read_text())
        source = dict(use_cached_activations=True, cached_activations_path=str(cached_activations),
                      context_size=spec["context_size"], seqpos_slice=(None,))
    else:
        source = dict(context_size=recipe.context_size, seqpos_slice=(1, None))  # position 0: attention sink
    # the mixing buffer must hold at least one training batch
    n_batches_in_buffer = max(recipe.n_batches_in_buffer, -(-recipe.train_batch_size_tokens // source["context_size"]) + 1)
    return LanguageModelSAERunnerConfig(
        sae=sae_training_config(recipe, d_in),
        model_name=recipe.model_name,
        hook_name=recipe.hook_name,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        prepend_bos=False,  # SmolLM2 has no BOS; rows start mid-text
        **source,
        training_tokens=recipe.training_tokens,
        train_batch_size_tokens=recipe.train_batch_size_tokens,
        n_batches_in_buffer=n_batches_in_buffer,
        n_batches_for_norm_estimate=50,  # sae-lens's 1,000 would read 4 M tokens just to estimate one scale
        store_batch_size_prompts=recipe.store_batch_size_prompts,
        lr=recipe.lr,
        lr_warm_up_steps=recipe.lr_warm_up_steps,
        lr_decay_steps=min(recipe.lr_decay_steps, n_steps // 2),
        dead_feature_window=recipe.dead_feature_window,
        device=device,
        seed=recipe.seed,
        n_checkpoints=5,
        checkpoint_path=str(checkpoint_dir(recipe)),
        resume_from_checkpoint=str(resume_from) if resume_from else None,
        output_path=None,
        n_eval_batches=2,
        eval_batch_size_prompts=8,
        logger=LoggingConfig(log_to_wandb=False),
        model_kwargs={},
    )


def training_dataset(corpus_path: Path, rows: tuple[int, int]):
    from datasets import Dataset

    dataset = Dataset.from_parquet(str(corpus_path))
    return dataset.select(range(rows[0], min(rows[1], len(dataset))))


def finalize_sae_folder(folder: Path) -> Path:
    """Rewrite a saved SAE as a plain inference SAE: decoder norms folded into the encoder (unit-norm
    decoder rows, as the absorption metrics assume; TopK selection is unchanged because the TopK
    trainer already ranked latents by norm-scaled activations), weights in fp16 to keep assets small."""
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(folder), device="cpu")
    try:
        sae.fold_W_dec_norm()
    except NotImplementedError:
        pass  # TopK trained without norm rescaling: folding would change which latents win
    sae.to(dtype=torch.float16).save_model(str(folder))
    return folder


def save_trained_sae(sae, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    sae.save_inference_model(str(output_dir))  # sae-lens's own training -> inference conversion
    return finalize_sae_folder(output_dir)


def train_sae(recipe: TrainingRecipe, corpus_path: Path, output_root: Path, device: str = "cpu", model=None,
              cached_activations: Path | None = None) -> Path:
    """Train with sae-lens's runner. With `cached_activations` the model is never run (sae-lens only runs it
    for wandb evals, which are off), but the runner still wants a model and token dataset to exist."""
    from sae_lens import LanguageModelSAETrainingRunner

    torch.manual_seed(recipe.seed)
    model = model if model is not None else load_model(recipe.model_name, device=device)
    resume_from = latest_checkpoint(recipe)
    cfg = runner_config(recipe, model.cfg.d_model, device, resume_from, cached_activations)
    runner = LanguageModelSAETrainingRunner(
        cfg, override_model=model, override_dataset=training_dataset(corpus_path, recipe.corpus_rows)
    )
    sae = runner.run()
    return save_trained_sae(sae, output_root / recipe.name)
