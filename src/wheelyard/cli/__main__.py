"""`python -m wheelyard.cli`: the same as the `wheelyard` command."""

from wheelyard.cli.main import main

# Guarded: worker processes (`--workers`) are spawned and import this module again.
if __name__ == "__main__":
    main()
