"""`python -m kdcc`: the same as the `kdcc` command."""

from kdcc.cli.app import cli

cli()
