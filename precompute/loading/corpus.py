"""Prepare the tokenized text corpus used for SAE training and for dashboards.

The default corpus is offline English prose from Debian packages (GCIDE dictionary, KJV bible,
WordNet glosses, fortunes, the Jargon File). It is tokenized with the model's tokenizer, documents
are joined with a separator token and cut into fixed-length rows, and the rows are shuffled with
a fixed seed, so the same command always yields the same corpus. Other sources: local text files
(`.txt`, `.txt.gz`), local Parquet files with a `text` column, or (with hub access) a dataset name.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

DEBIAN_SOURCES = ("gcide", "bible", "wordnet", "fortunes", "jargon")
DEBIAN_PACKAGES = "dict-gcide bible-kjv wordnet-base fortunes jargon-text"
GCIDE_PATH = Path("/usr/share/dictd/gcide.dict.dz")
JARGON_PATH = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")


@dataclass(frozen=True)
class CorpusConfig:
    sources: tuple[str, ...] = ("debian",)  # "debian", a local .txt/.txt.gz/.parquet path, or a hub dataset name
    context_size: int = 128  # tokens per row; position 0 of each row is excluded downstream (attention sink)
    separator_token_id: int | None = None  # joins documents; None: `<|endoftext|>` if in the vocabulary
    # (id 0 for SmolLM2, 50256 for GPT-2), else the tokenizer's EOS
    seed: int = 0
    max_tokens: int | None = None  # stop tokenizing once this many tokens are collected


def _whitespace(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def gcide_documents() -> Iterator[str]:
    """Dictionary entries; dictd pronunciation/markup between backslashes is dropped."""
    with gzip.open(GCIDE_PATH, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    for entry in re.split(r"\n\s*\n", text):
        entry = re.sub(r"\\[^\\\n]*\\", "", entry)
        entry = _whitespace(entry)
        if len(entry) > 40 and not entry.startswith("00-database"):
            yield entry


def jargon_documents() -> Iterator[str]:
    with gzip.open(JARGON_PATH, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = _whitespace(paragraph)
        if len(paragraph) > 40:
            yield paragraph


def fortune_documents() -> Iterator[str]:
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.suffix or path.is_dir() or path.is_symlink():
            continue  # skip .dat indexes, .u8 duplicates and links
        text = path.read_text(encoding="latin-1")
        for fortune in text.split("\n%\n"):
            fortune = fortune.strip()
            if len(fortune) > 20:
                yield fortune


def wordnet_documents(glosses_per_document: int = 20) -> Iterator[str]:
    """WordNet glosses (definitions and example sentences), grouped into short documents."""
    batch: list[str] = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET_DIR / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            batch.append(line.split("|", 1)[1].strip())
            if len(batch) == glosses_per_document:
                yield " ".join(batch)
                batch = []
    if batch:
        yield " ".join(batch)


def bible_documents() -> Iterator[str]:
    """The KJV text through the `bible` command of Debian's `bible-kjv`, one chapter a document."""
    if shutil.which("bible") is None:
        raise FileNotFoundError("the `bible` command (Debian package bible-kjv)")
    output = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    chapter: list[str] = []
    current = None
    for line in output.splitlines():
        match = re.match(r"^(\S+?)(\d+):(\d+) (.*)$", line)
        if not match:
            continue
        key = (match.group(1), match.group(2))
        if key != current and chapter:
            yield " ".join(chapter)
            chapter = []
        current = key
        chapter.append(match.group(4))
    if chapter:
        yield " ".join(chapter)


DEBIAN_READERS = {
    "gcide": gcide_documents,
    "bible": bible_documents,
    "wordnet": wordnet_documents,
    "fortunes": fortune_documents,
    "jargon": jargon_documents,
}


def debian_documents() -> Iterator[str]:
    missing = []
    for name in DEBIAN_SOURCES:
        try:
            yield from DEBIAN_READERS[name]()
        except FileNotFoundError:
            missing.append(name)
    if len(missing) == len(DEBIAN_SOURCES):
        raise FileNotFoundError(f"No Debian corpus found: apt-get install {DEBIAN_PACKAGES}")


def local_documents(path: Path) -> Iterator[str]:
    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=["text"])
        yield from (t for t in table.column("text").to_pylist() if t)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for paragraph in re.split(r"\n\s*\n", handle.read()):
            if paragraph.strip():
                yield paragraph.strip()


def hub_documents(name: str) -> Iterator[str]:
    from datasets import load_dataset

    for row in load_dataset(name, split="train", streaming=True):
        yield row["text"]


def documents(source: str) -> Iterator[str]:
    if source == "debian":
        return debian_documents()
    if Path(source).exists():
        return local_documents(Path(source))
    return hub_documents(source)


def batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def separator_token_id(tokenizer, configured: int | None) -> int:
    if configured is not None:
        return configured
    endoftext = tokenizer.get_vocab().get("<|endoftext|>")
    if endoftext is not None:
        return endoftext
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no <|endoftext|> or EOS token: pass a separator token id")
    return tokenizer.eos_token_id


def tokenize_to_rows(tokenizer, texts: Iterable[str], config: CorpusConfig) -> np.ndarray:
    """Concatenate tokenized documents (separator between them) and cut into rows of `context_size`."""
    separator = separator_token_id(tokenizer, config.separator_token_id)
    chunks: list[np.ndarray] = []
    total = 0
    progress = tqdm(desc="tokenizing corpus", unit="tok", unit_scale=True)
    for batch in batched(texts, 512):
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            chunks.append(np.asarray(ids + [separator], dtype=np.int32))
            total += len(ids) + 1
            progress.update(len(ids) + 1)
        if config.max_tokens is not None and total >= config.max_tokens:
            break
    progress.close()
    stream = np.concatenate(chunks)
    n_rows = len(stream) // config.context_size
    if config.max_tokens is not None:
        n_rows = min(n_rows, config.max_tokens // config.context_size)
    return stream[: n_rows * config.context_size].reshape(n_rows, config.context_size)


def shuffled_rows(rows: np.ndarray, seed: int) -> np.ndarray:
    # Rows are shuffled so that any prefix of the file mixes all sources.
    return rows[np.random.default_rng(seed).permutation(len(rows))]


def build_corpus(tokenizer, config: CorpusConfig, output: Path) -> Path:
    texts = (text for source in config.sources for text in documents(source))
    rows = shuffled_rows(tokenize_to_rows(tokenizer, texts, config), config.seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"input_ids": pa.array(list(rows), type=pa.list_(pa.int32()))})
    tmp = output.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(output)
    return output


def load_corpus_rows(path: Path, max_rows: int | None = None) -> np.ndarray:
    """[n_rows, context_size] int32 token ids."""
    table = pq.read_table(path)
    column = table.column("input_ids")
    if max_rows is not None:
        column = column.slice(0, max_rows)
    flat = column.combine_chunks().flatten().to_numpy()
    return flat.reshape(len(column), -1).astype(np.int32)
