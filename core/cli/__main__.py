"""`python -m core.cli`: the `courtyard` command, for an environment whose scripts folder is
not on PATH (e.g. a virtual environment that is not activated)."""

from core.cli import main

if __name__ == "__main__":
    main()
