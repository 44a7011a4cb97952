"""Deprecated: `python -m edgefer.train.resident pack|fit` forwards to the one trainer.

`pack DATA OUT` is `edgefer data pack DATA OUT`; `fit PACK --out DIR [options]` is
`edgefer train --recipe resident --model edge --data PACK --out DIR [options]` (the same
option names; --max-epochs is --epochs). Kept so the README's recorded commands still run.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from edgefer.runtime import cli
    argv = list(sys.argv[1:] if argv is None else argv)
    print("edgefer: note: `python -m edgefer.train.resident` is deprecated; use `edgefer data pack` and "
          "`edgefer train --recipe resident`", file=sys.stderr)
    if argv[:1] == ["pack"]:
        return cli.main(["data", "pack", *argv[1:]])
    if argv[:1] == ["fit"] and len(argv) > 1:
        rest = ["--epochs" if a == "--max-epochs" else a for a in argv[2:]]
        return cli.main(["train", "--recipe", "resident", "--model", "edge", "--data", argv[1], *rest])
    print("usage: python -m edgefer.train.resident {pack DATA OUT | fit PACK --out DIR [options]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
