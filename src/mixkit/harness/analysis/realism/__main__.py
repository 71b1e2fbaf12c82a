"""``python -m mixkit.harness.analysis.realism``: prints the tables of docs/analysis.md."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
