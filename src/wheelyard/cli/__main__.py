"""`python -m wheelyard.cli`: the same as the `wheelyard` command."""

from wheelyard.cli.main import main

main()
