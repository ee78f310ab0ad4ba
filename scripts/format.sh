#!/usr/bin/env bash
# The code's style, settled by tools: prettier for TypeScript (.prettierrc.json) and
# clang-format in the kernel's style for bpf/ (bpf/.clang-format).
#   bash scripts/format.sh           rewrite every file in that style (npm run format)
#   bash scripts/format.sh --check   change nothing; fail naming each file that differs
#                                    (the test command runs this)
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

mode=write
[ "${1:-}" = "--check" ] && mode=check
TS_FILES=("**/*.ts" "**/*.mjs" "bin/*.js")
C_FILES=(bpf/*.c bpf/lib/*.h bpf/include/*.h bpf/tests/*.c)
CLANG_FORMAT=$(command -v clang-format-16 clang-format 2>/dev/null | head -n 1 || true)

status=0
if [ "$mode" = check ]; then
  npx --no-install prettier --check --log-level warn "${TS_FILES[@]}" || {
    echo "format: the TypeScript files above are not in prettier's style; run: npm run format" >&2
    status=1
  }
  if [ -n "$CLANG_FORMAT" ]; then
    "$CLANG_FORMAT" --dry-run --Werror "${C_FILES[@]}" 2>/dev/null || {
      echo "format: bpf/ sources differ from bpf/.clang-format (see: $CLANG_FORMAT --dry-run ${C_FILES[*]}); run: npm run format" >&2
      status=1
    }
  else
    echo "format: clang-format is not installed, so bpf/'s style is not checked (scripts/setup.sh installs clang-format-16)"
  fi
else
  npx --no-install prettier --write --log-level warn "${TS_FILES[@]}"
  if [ -n "$CLANG_FORMAT" ]; then
    "$CLANG_FORMAT" -i "${C_FILES[@]}"
  else
    echo "format: clang-format is not installed, so bpf/ was left as it is (apt-get install clang-format-16)"
  fi
fi
exit $status
