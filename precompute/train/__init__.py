"""Training SAEs: activation cache, training recipe, sweeps of recipes, and the card measured for each trained SAE."""
