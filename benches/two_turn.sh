#!/usr/bin/env bash
# A 2-turn run: rlm (with and without a warm sandbox pool) against the official rlms 0.1.3
# LocalREPL (from the package registry, in a throwaway venv), one loopback server, one run.
# Usage: benches/two_turn.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q 'rlms==0.1.3'
cargo bench --bench two_turn -- --python "$venv/bin/python" "$@"
