"""Offline precompute job: model + SAEs -> DuckDB. The only writer of the database."""
