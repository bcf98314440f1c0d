"""Every bad input a writer command must refuse in one line, before any work: the table that
tests/precompute/test_bad_inputs.py runs in-process and bench/bad_inputs.py runs as real commands (with the seconds
each took to report).

Each case writes what it needs under a fresh folder and returns the command's arguments. The target database is
always ROOT/db/explorer.duckdb: an explorer database of this schema with no SAEs unless the case replaces it, so
that "the target is unchanged" is measured on a real file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contract.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
NEWER = str(int(SCHEMA_VERSION) + 1)  # a schema a newer release would write
TOY_SAE = REPO / "assets" / "saes" / "toy-hierarchy-relu-32"
TOY_CORPUS = REPO / "assets" / "toy" / "corpus.parquet"


@dataclass(frozen=True)
class BadInput:
    name: str  # what is wrong, in the words
    make: Callable[[Path], list[str]]  # writes the case's files under ROOT; returns the command's arguments
    expect: str  # a fragment of the one-line message
    mount: str | None = None  # "read-only" or "small": the database folder is such a filesystem (root only)


def target(root: Path) -> Path:
    return root / "db" / "explorer.duckdb"


def explorer_database(path: Path, schema_version: str | None = None) -> Path:
    """An explorer database with this code's tables and meta and no SAEs (another schema version if given)."""
    from contract.schema import ddl_statements
    from precompute.storage.writer import write_meta

    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        for statement in ddl_statements():
            con.execute(statement)
        write_meta(con, ["toy-hierarchy"])
        if schema_version is not None:
            con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [schema_version])
    return path


def build(root: Path, *extra: str, sae: str | None = None, corpus: Path | None = None, db: Path | None = None) -> list[str]:
    """A dashboards-only toy build into the case's target (every argument valid unless replaced)."""
    return ["build", "--model", "toy-hierarchy", "--corpus", str(corpus or TOY_CORPUS), "--rows", "0:64",
            "--sae", sae or str(TOY_SAE), "--db", str(db or target(root)), "--no-absorption", *extra]


def then(_setup: object, argv: list[str]) -> list[str]:
    """The arguments, once the setup (evaluated first, as the first argument) has written the case's files."""
    return argv


def sae_copy(root: Path, edit: Callable[[Path], None]) -> str:
    folder = root / "sae"
    shutil.copytree(TOY_SAE, folder)
    edit(folder)
    return str(folder)


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def corpus_file(root: Path, table: pa.Table) -> Path:
    path = root / "corpus.parquet"
    pq.write_table(table, path)
    return path


def token_rows(rows: list[list[int]]) -> pa.Table:
    return pa.table({"input_ids": pa.array(rows, type=pa.list_(pa.int32()))})


def narrower_sae(folder: Path) -> None:
    """A self-consistent SAE (config and weights agree) that reads 48-wide activations: another model's."""
    from safetensors.numpy import save_file

    config = json.loads((folder / "cfg.json").read_text())
    config["d_in"] = 48
    (folder / "cfg.json").write_text(json.dumps(config))
    d_sae = config["d_sae"]
    save_file({"W_enc": np.zeros((48, d_sae), np.float32), "W_dec": np.zeros((d_sae, 48), np.float32),
               "b_enc": np.zeros(d_sae, np.float32), "b_dec": np.zeros(48, np.float32)},
              str(folder / "sae_weights.safetensors"))


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def replaced_target(root: Path, data: bytes) -> None:
    write_bytes(target(root), data)


def empty_duckdb(path: Path) -> None:
    path.unlink()
    duckdb.connect(str(path)).close()


def truncated_explorer_database(root: Path) -> None:
    truncate(target(root), 0.3)


def schema_version_target(root: Path, version: str) -> None:
    target(root).unlink()
    explorer_database(target(root), version)


CASES: list[BadInput] = [
    # SAEs
    BadInput("release id typo", lambda r: build(r, sae="gpt2-small-res-jbb:blocks.8.hook_resid_pre"),
             "did you mean 'gpt2-small-res-jb'"),
    BadInput("SAE id typo in a release", lambda r: build(r, sae="gpt2-small-res-jb:blocks.88.hook_resid_pre"),
             "has no SAE 'blocks.88.hook_resid_pre'"),
    BadInput("colon:path", lambda r: build(r, sae="colon:path"), "sae-lens has no release 'colon'"),
    BadInput("no such SAE folder", lambda r: build(r, sae=str(r / "missing-folder")), "neither an existing SAE folder"),
    BadInput("SAE key with capitals and spaces", lambda r: build(r, sae=f"My SAE={TOY_SAE}"), "SAE key 'My SAE'"),
    BadInput("cfg.json not JSON", lambda r: build(r, sae=sae_copy(r, lambda f: (f / "cfg.json").write_text("{d_in: 64"))),
             "is not valid JSON"),
    BadInput("cfg.json without d_in",
             lambda r: build(r, sae=sae_copy(r, lambda f: (f / "cfg.json").write_text('{"d_sae": 32}'))),
             "d_in and d_sae must be positive"),
    BadInput("corrupt safetensors",
             lambda r: build(r, sae=sae_copy(r, lambda f: write_bytes(f / "sae_weights.safetensors", random_bytes(4096)))),
             "not a safetensors file"),
    BadInput("truncated safetensors",
             lambda r: build(r, sae=sae_copy(r, lambda f: truncate(f / "sae_weights.safetensors"))), "is truncated"),
    BadInput("SAE d_in differs from the model", lambda r: build(r, sae=sae_copy(r, narrower_sae)),
             "48-wide activations at blocks.0.hook_resid_pre, but the model's are 64 wide"),
    # corpus
    BadInput("0-byte corpus", lambda r: build(r, corpus=write_bytes(r / "corpus.parquet", b"")), "is empty"),
    BadInput("corpus not Parquet", lambda r: build(r, corpus=write_bytes(r / "corpus.parquet", random_bytes(2048))),
             "is not a readable Parquet file"),
    BadInput("wrong corpus schema", lambda r: build(r, corpus=corpus_file(r, pa.table({"text": ["a b c"] * 80}))),
             "has no `input_ids` column"),
    BadInput("ragged corpus rows",
             lambda r: build(r, corpus=corpus_file(r, token_rows([[1, 2, 3], [1, 2]] * 40))), "not all one"),
    BadInput("token ids outside the vocabulary",
             lambda r: build(r, corpus=corpus_file(r, token_rows([[1, 2, 100_000]] * 80))), "outside toy-hierarchy's vocabulary"),
    BadInput("rows past the end of the corpus", lambda r: build(r, "--rows", "5000:5064"), "starts past the end"),
    BadInput("missing corpus", lambda r: build(r, corpus=r / "nope.parquet"), "not found"),
    # the database
    BadInput("--db holds random bytes", lambda r: then(replaced_target(r, random_bytes(65536)), build(r)),
             "is not a DuckDB database"),
    BadInput("--db is an empty file", lambda r: then(replaced_target(r, b""), build(r)), "empty file (0 bytes)"),
    BadInput("--db is an empty DuckDB database",
             lambda r: then(empty_duckdb(target(r)), build(r)), "did not write"),
    BadInput("--db is truncated", lambda r: then(truncated_explorer_database(r), build(r)),
             "damaged or truncated"),
    BadInput("--db is a folder", lambda r: then((r / "folder.duckdb").mkdir(), build(r, db=r / "folder.duckdb")),
             "is a folder"),
    BadInput("--db in a read-only folder", lambda r: build(r, db=r / "ro" / "explorer.duckdb"), "cannot write in",
             mount="read-only"),
    BadInput("disk nearly full", lambda r: build(r, db=r / "small" / "explorer.duckdb"), "not enough disk space",
             mount="small"),
    BadInput("--db of a newer schema (build)", lambda r: then(schema_version_target(r, NEWER), build(r)),
             f"written by a newer absorption-explorer (schema {NEWER}): upgrade the explorer"),
    BadInput("--db of a newer schema (migrate)", lambda r: then(schema_version_target(r, NEWER), ["migrate", "--db", str(target(r))]), "upgrade the explorer"),
    BadInput("--from of a newer schema (merge)",
             lambda r: ["merge", "--db", str(target(r)), "--from", str(explorer_database(r / "new.duckdb", NEWER))],
             "upgrade the explorer"),
    BadInput("--db of an older schema (build)", lambda r: then(schema_version_target(r, "11"), build(r)),
             "upgrade it first with `python -m precompute migrate"),
    BadInput("--from holds random bytes (merge)",
             lambda r: ["merge", "--db", str(target(r)), "--from", str(write_bytes(r / "x.duckdb", random_bytes(9000)))],
             "is not a DuckDB database"),
    BadInput("export from a missing database", lambda r: ["export", "--sae", "a", "--db", str(r / "none.duckdb")],
             "no such file"),
    # arguments
    BadInput("--folds 1", lambda r: build(r, "--folds", "1"), "at least 2 folds"),
    BadInput("--batch-size 0", lambda r: build(r, "--batch-size", "0"), "--batch-size: 0 is too small"),
    BadInput("--absorption-words 0", lambda r: build(r, "--absorption-words", "0"), "--absorption-words: 0 is too small"),
    BadInput("--batch-size abc", lambda r: build(r, "--batch-size", "abc"), "is not a whole number"),
    BadInput("--rows 5", lambda r: build(r, "--rows", "5"), "--rows must look like START:STOP"),
    BadInput("--rows 10:5", lambda r: build(r, "--rows", "10:5"), "--rows needs 0 <= START < STOP"),
    BadInput("no --sae", lambda r: build(r)[:7] + build(r)[9:], "no SAEs to build"),
    BadInput("--default-sae not built", lambda r: build(r, "--default-sae", "nope"), "--default-sae 'nope' is neither"),
    BadInput("default-sae of an unknown SAE", lambda r: ["default-sae", "--db", str(target(r)), "--sae", "nope"],
             "'nope' is not an SAE of"),
    BadInput("--sweep file missing", lambda r: build(r, "--sweep", str(r / "nope.json")), "--sweep"),
]


def sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def snapshot(folder: Path) -> dict[str, str | None]:
    """Every file under the folder with its hash: what the command must leave exactly as it was."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*"))}


@contextlib.contextmanager
def mounted(folder: Path, kind: str | None) -> Iterator[bool]:
    """`folder` as a read-only or a 1 MB filesystem (tmpfs; needs root): yields False when none can be mounted."""
    if kind is None:
        yield True
        return
    folder.mkdir(parents=True, exist_ok=True)
    options = "ro,size=64m" if kind == "read-only" else "size=1m"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        yield False
        return
    try:
        if kind == "small":
            explorer_database(folder / "explorer.duckdb")  # the target, in a folder with under 1 MB free
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def case_folder(root: Path, case: BadInput) -> Path:
    """A fresh folder for the case, with the default target (an explorer database without SAEs)."""
    folder = root / "".join(c if c.isalnum() else "-" for c in case.name)
    folder.mkdir(parents=True)
    explorer_database(target(folder))
    return folder


def mount_point(folder: Path, case: BadInput) -> Path:
    return folder / ("ro" if case.mount == "read-only" else "small")


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
