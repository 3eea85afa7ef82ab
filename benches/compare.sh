#!/usr/bin/env bash
# Side-by-side benchmark against RLM-Python 2.1.0 (from PyPI, in a throwaway venv) and
# ripgrep, in one run. Usage: benches/compare.sh [--search-mb N]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v rg >/dev/null || { apt-get update -qq && apt-get install -y -qq ripgrep >/dev/null; }
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q 'rlm-python==2.1.0'
cargo bench --bench compare -- --python "$venv/bin/python" "$@"
