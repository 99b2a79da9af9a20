"""`python -m cst ...`: the command line (see cst/cli.py)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
