"""`python -m bench`: the speed and scale benchmark (see bench/speed.py and docs/speed.md)."""

import sys

from bench.speed import main

sys.exit(main())
