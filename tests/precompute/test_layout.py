"""The precompute package's layout, read from its import graph (ast, no import runs): every subpackage sits on a
floor and imports only from floors below it, so the graph between subpackages has no cycle; `backend/` reads the
database without the precompute package (tests/test_layout.py checks the packages between each other)."""

from __future__ import annotations

import graphlib
from pathlib import Path

from tests.import_graph import ROOT, Import, module_name
from tests.import_graph import imports_of as all_imports_of

PACKAGE = ROOT / "precompute"

# Lowest floor first. A room imports only from rooms on lower floors (and from itself): nothing runs upward or
# sideways. `cli` is the package's root modules (cli.py, __main__.py): the command, on top of everything.
FLOORS: list[set[str]] = [
    {"util", "toy"},  # crash points, row blocks; the toy world, model and tokenizer (sae-lens synthetic): leaves
    {"loading", "storage"},  # model / SAE / corpus loading; the writer and the export
    {"absorption"},  # the first-letter absorption measurement and its tables
    {"pipeline"},  # the job and its stages, Ray builds, merge, migrate
    {"train"},  # SAE training, sweeps, activation cache, cards (a card measures like a build)
    {"cli"},
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def imports_of(path: Path) -> list[Import]:
    """Every import of a precompute module in the file."""
    return [imp for imp in all_imports_of(path) if imp.package == "precompute"]


def room(module: str) -> str | None:
    """The subpackage a precompute module lives in; `cli` for the package's root modules; None for the package."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "cli"


def package_imports() -> list[tuple[str, Import]]:
    """(importing room, import) for every import between precompute modules."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = room(module_name(path))
        for imp in imports_of(path):
            if source is not None:
                edges.append((source, imp))
    return edges


def test_the_package_has_imports_to_check():
    edges = package_imports()
    assert len(edges) > 50
    assert {source for source, _ in edges} >= {"absorption", "pipeline", "train", "storage", "cli"}


def test_every_subpackage_has_a_floor():
    rooms = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()} | {"cli"}
    assert rooms == set(FLOOR), f"rooms without a floor: {sorted(rooms - set(FLOOR))}; floors without a room: " \
                                f"{sorted(set(FLOOR) - rooms)}"
    root_modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert root_modules == {"__init__", "__main__", "cli"}, "the package root holds only the command"


def test_no_import_runs_upward_or_sideways():
    wrong = []
    for source, imp in package_imports():
        target = room(imp.module)
        if target is None or target == source:
            continue
        if FLOOR[target] >= FLOOR[source]:
            wrong.append(f"{imp} ({source}/ is on floor {FLOOR[source]}, {target}/ on floor {FLOOR[target]}: "
                         f"{source}/ may import only from {sorted(r for r in FLOOR if FLOOR[r] < FLOOR[source])})")
    assert not wrong, "imports against the floor order:\n" + "\n".join(wrong)


def test_storage_and_loading_import_nothing_above_them():
    above = {"pipeline", "train", "absorption", "cli"}
    wrong = [str(imp) for source, imp in package_imports()
             if source in {"storage", "loading", "util"} and room(imp.module) in above]
    assert not wrong, "storage/, loading/ and util/ import nothing from pipeline/, train/, absorption/ or the CLI:\n" + \
        "\n".join(wrong)
    wrong = [str(imp) for source, imp in package_imports()
             if source == "absorption" and room(imp.module) in {"pipeline", "train", "cli"}]
    assert not wrong, "absorption/ imports nothing from pipeline/, train/ or the CLI:\n" + "\n".join(wrong)


def test_the_subpackages_have_a_floor_order():
    """A topological order of the graph between subpackages exists (no cycle, even through lazy imports)."""
    graph: dict[str, set[str]] = {r: set() for r in FLOOR}
    witness: dict[tuple[str, str], Import] = {}
    for source, imp in package_imports():
        target = room(imp.module)
        if target is not None and target != source:
            graph[source].add(target)
            witness.setdefault((source, target), imp)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        cycle = error.args[1][::-1]  # graphlib lists each room before the room that imports it
        steps = [str(witness[(a, b)]) for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("a cycle between subpackages: " + " -> ".join(cycle) + "\n" + "\n".join(steps)) from None
    assert set(order[:len(FLOORS[0])]) == FLOORS[0] and order[-1] == "cli"


def test_modules_that_locate_the_repository_from_their_own_path_find_it():
    """A module that moved a floor down keeps pointing at the repository (Ray workers' PYTHONPATH, the code version,
    SAE folders stored relative to it), not at a package folder."""
    import re

    pattern = re.compile(r"Path\(__file__\)\.resolve\(\)\.(parents\[(\d)\]|parent\.parent)(?![.\w])")
    found = []
    for path in sorted((ROOT / "precompute").rglob("*.py")):
        for match in pattern.finditer(path.read_text()):
            level = int(match.group(2)) if match.group(2) else 1
            found.append((path, path.resolve().parents[level]))
    assert found, "the precompute modules that locate the repository"
    wrong = [f"{path.relative_to(ROOT)} -> {located}" for path, located in found if located != ROOT]
    assert not wrong, "these resolve to a folder other than the repository:\n" + "\n".join(wrong)


def test_every_test_folder_is_collected(request):
    """pytest skips folders matching norecursedirs (by default `build`, and a few others):
    pytest.ini sets it so no test folder is skipped silently."""
    from fnmatch import fnmatch

    patterns = request.config.getini("norecursedirs")
    skipped = sorted({str(path.parent.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")
                      if any(fnmatch(part, pattern) for part in path.parent.relative_to(ROOT).parts
                             for pattern in patterns)})
    assert not skipped, f"pytest would skip these test folders (norecursedirs {patterns}): {skipped}"


def test_only_the_writer_replaces_opens_for_writing_or_copies_a_database():
    """Every operation on a target file goes through precompute/storage/writer.py (build, Ray, merge, migrate): no
    other module renames a file into place, opens a DuckDB file writable, or copies one."""
    import re

    pattern = re.compile(r"os\.replace\(|\.rename\(|shutil\.copyfile\(|duckdb\.connect\([^)]")

    def writes(line: str) -> bool:
        return bool(pattern.search(line)) and "read_only=True" not in line

    wrong = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(ROOT).as_posix() not in WRITER_MODULES
             for number, line in enumerate(path.read_text().splitlines(), 1) if writes(line)]
    assert not wrong, "\n".join(wrong)


# The writer, and the modules that write files that are not databases (a corpus, an SAE folder, the toy's assets).
WRITER_MODULES = {"precompute/storage/writer.py", "precompute/loading/corpus.py", "precompute/train/training.py",
                  "precompute/train/sweep.py", "precompute/train/activation_cache.py", "precompute/toy/hierarchy.py"}
