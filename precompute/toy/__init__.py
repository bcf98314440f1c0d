"""Ground truth you can look at: a toy world of known parent/child features (sae-lens synthetic data), a
model-free "model" whose residual stream is that world, and an SAE trained on it (world.py, hierarchy.py)."""

# The toy model's name, here (no torch, no sae-lens) so the loader and the task registry name it without
# importing hierarchy.py
TOY_MODEL_NAME = "toy-hierarchy"

