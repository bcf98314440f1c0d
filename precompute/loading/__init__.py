"""Loading what a build reads: the model and tokenizer (model), SAEs from folders or sae-lens releases (sae), corpus rows (corpus).
Imports nothing above util/."""
