"""`absorption-explorer serve [--db FILE] [streamlit options]` serves the explorer (as scripts/explore.sh does);
`absorption-explorer build|merge|migrate|export|...` runs the precompute's command of that name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# No file watcher: serving is not editing, and a watcher walks the whole tree again whenever other jobs write under
# the repository (bench/concurrency.py measured 4x the server CPU per view).
SERVE_OPTIONS = ["--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
USAGE = ("usage: absorption-explorer serve [--db FILE] [streamlit options]\n"
         "       absorption-explorer {build,merge,migrate,export,corpus,train,sweep,card,toy} ... "
         "(python -m precompute --help)")


def serve(argv: list[str]) -> int:
    if argv[:1] == ["--db"]:
        if len(argv) < 2:
            print("error: --db needs a file", file=sys.stderr)
            return 2
        os.environ["EXPLORER_DB"] = str(Path(argv[1]).resolve())
        argv = argv[2:]
    from streamlit.web import cli as streamlit_cli

    os.chdir(REPO)  # app.py's pages and .streamlit/config.toml are found from the repository
    sys.argv = ["streamlit", "run", str(REPO / "app.py"), *SERVE_OPTIONS, *argv]
    return streamlit_cli.main()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "serve":
        return serve(argv[1:])
    from precompute.cli import main as precompute_main

    return precompute_main(argv)
