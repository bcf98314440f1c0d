"""The contract between the precompute (the only writer) and the explorer (the reader): the DDL and its version,
the typed rows both sides write and read, SQL fragments both run, and the constants that define the science's
vocabulary. It imports neither side; both import it, and neither imports the other (tests/test_layout.py)."""
