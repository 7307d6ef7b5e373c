#!/usr/bin/env bash
# mypy over libs/ and services/. The distribution maps two folders into one package (agentbus from
# libs/agentbus, agentbus.services from services/), which mypy cannot follow through an editable install,
# so it checks a tree of links that has the package's real shape. Arguments narrow the check
# (e.g. `tools/typecheck.sh agentbus.services.memory`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
tree=$venv/typecheck
rm -rf "$tree" && mkdir -p "$tree/agentbus"
for f in "$root"/libs/agentbus/*; do ln -s "$f" "$tree/agentbus/"; done
ln -s "$root/services" "$tree/agentbus/services"
cd "$tree"
targets=()
if [ $# -eq 0 ]; then targets=(-p agentbus); else for p in "$@"; do targets+=(-p "$p"); done; fi
MYPYPATH=$tree exec "$venv/bin/mypy" --config-file "$root/pyproject.toml" --python-executable "$venv/bin/python" \
  "${targets[@]}"
