"""Operator tooling, apart from the logic: the `osr` command line (`cli`, subcommands in
`commands/`), the embedded end-to-end demo (`demo`), and local service supervision (`services/`).
The one package allowed to know `streams` and `dags` by name; no logic module imports it."""
