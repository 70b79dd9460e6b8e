"""`python -m kdcc`: the same as the `kdcc` command."""

from kdcc.cli import main

raise SystemExit(main())
