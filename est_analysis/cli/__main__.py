"""`python -m est_analysis.cli ...` is `est ...` (what torchrun starts on every rank)."""

import sys

from est_analysis.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
