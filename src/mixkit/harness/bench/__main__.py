"""``python -m mixkit.harness.bench``: the same as ``mixkit bench``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
