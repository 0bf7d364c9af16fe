"""Run tokenpick's benchmark suite: ``python benchmarks/run.py [--full] [--json FILE]``.

The same as ``python -m tokenpick bench``; see benchmarks/README.md.
"""

import sys

from tokenpick.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
