"""Running the model on the server: live inference for the Live page (the model and the sidebar SAE over free text)
and tokenization with a model's own tokenizer. The only package of the explorer that reaches torch, transformers,
sae-lens and the precompute's code, each imported on first use; backend/ (the read-only data layer) never imports it,
and no page but Live imports it at load (the token page calls its tokenizer only to split a string that is not a
vocabulary word).
"""
