#!/usr/bin/env bash
# Screenshots of the built docs site, to look at them as pictures: serves site/ on a free port
# and saves one PNG per page with headless Chromium (Debian: apt-get install -y chromium).
#   bash scripts/build_docs.sh && bash scripts/docs_screenshots.sh [OUT_DIR] [PAGE ...]
# Pages are paths under site/ without .html (default: the home page, the mixers' API page, the
# detection guide and the integrations page).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/docs-shots}"; shift || true
pages=("$@"); [ ${#pages[@]} -gt 0 ] || pages=(index api/mixers detection integrations)
command -v chromium >/dev/null || { echo "docs_screenshots.sh: chromium not found (apt-get install -y chromium)" >&2; exit 1; }
[ -f site/index.html ] || { echo "docs_screenshots.sh: no site/ (run bash scripts/build_docs.sh)" >&2; exit 1; }
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python -m http.server "$port" --bind 127.0.0.1 --directory site >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
sleep 1
mkdir -p "$out"
for page in "${pages[@]}"; do
    file="$out/$(echo "$page" | tr / _).png"
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1600 \
        --screenshot="$file" "http://127.0.0.1:$port/$page.html" 2>/dev/null
    echo "$file"
done
