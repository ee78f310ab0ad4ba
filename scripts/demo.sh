#!/usr/bin/env bash
# The README's main job (npm run demo): set up, then run `pdm demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/pdm.js demo "$@"
