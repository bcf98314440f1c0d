from absorption_explorer.cli import main

raise SystemExit(main())
