"""`python -m arv` is the `arv` command."""

from arv.cli import main

main()
