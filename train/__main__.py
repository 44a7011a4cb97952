"""`python -m edgefer.train ...` is `edgefer train ...`: the entry torchrun starts in each process.

    torchrun --nproc-per-node 2 -m edgefer.train --model edge --data fer2013:../shared/data/fer2013
"""
from __future__ import annotations

import sys

from edgefer.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
