"""The `absorption-explorer` command: `serve` brings the explorer up; every other command is the precompute's
(`python -m precompute ...`)."""
