"""Small shared leaves with no project imports: named crash points (faults) and row blocks over latents (blocks)."""
