"""The only writer of the explorer's DuckDB file (writer: DDL, atomic build-and-rename, typed inserts) and the export of
one SAE's absorption results (export). Imports nothing above util/."""
