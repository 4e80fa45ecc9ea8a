#!/usr/bin/env bash
# Regenerate tests/fixtures/adapterhub_parity.json with the real AdapterHub `adapters` library.
# The library pins its own transformers 4.x, so it lives in an isolated venv outside the repo
# and never becomes a dependency of sciembed or of CI.
#
# Usage: scripts/make_adapterhub_fixture.sh [--ref-dir DIR] [--out FILE]
# Env:   ADAPTERS_VENV (default /tmp/adapters-venv), ADAPTERS_VERSION (default: latest that installs)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ADAPTERS_VENV:-/tmp/adapters-venv}"

if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
# torch first: this exact version resolves to the local CPU wheel; letting `adapters` pull torch
# would fetch a multi-GB CUDA build.
"$venv/bin/pip" install --quiet torch==2.13.0
"$venv/bin/pip" install --quiet "adapters${ADAPTERS_VERSION:+==$ADAPTERS_VERSION}"

# Nothing may be fetched from a model hub: every weight is made locally or read from --ref-dir.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$venv/bin/python" "$repo/scripts/make_adapterhub_fixture.py" "$@"
