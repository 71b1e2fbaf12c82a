#!/usr/bin/env bash
# Build the documentation site (mkdocs-material + mkdocstrings) into site/, strictly: any warning
# (a broken link, a docstring griffe cannot read) fails the build. Needs the `docs` extra.
# Quiet on success; on failure the build log is printed. (Not `mkdocs build --quiet`: that also
# hides the warnings from --strict, so a build with warnings would pass.)
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rc=0
python -m mkdocs build --strict --clean >"$log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$log" >&2
    echo "build_docs.sh: mkdocs build --strict failed (exit $rc)" >&2
fi
exit "$rc"
