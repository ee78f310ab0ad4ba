#!/usr/bin/env bash
# The README's test command (npm test) and CI's (.ci/run): set up, type-check, run
# every test file with node's test runner. Files are listed explicitly because on
# Node 20 a bare `node --test` finds no .ts files and passes with zero tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "test: type-checking (tsc --noEmit)"
npx --no-install tsc --noEmit -p .

echo "test: checking the code's style (scripts/format.sh --check)"
bash scripts/format.sh --check

# Files whose assertions depend on timing (delays injected by user-space bridges and
# measured back) say so on their first line ("// timing-sensitive: ..."); they run last,
# one at a time, once nothing else competes for the CPU.
mapfile -t all < <(find test -name '*.test.ts' | sort)
TIMED=()
files=()
for f in "${all[@]}"; do
  if head -n 1 "$f" | grep -q '^// timing-sensitive:'; then TIMED+=("$f"); else files+=("$f"); fi
done
if [ ${#files[@]} -eq 0 ] || [ ${#TIMED[@]} -eq 0 ]; then
  echo "test: found ${#files[@]} test files and ${#TIMED[@]} timing-sensitive ones under test/; expected some of each" >&2
  exit 1
fi
echo "test: running ${#files[@]} test files, then ${#TIMED[@]} timing-sensitive ones alone"
status=0
node --import tsx --test --test-reporter=spec --test-concurrency=2 "${files[@]}" || status=$?
sleep 2 # let the machine settle after the parallel phase
failed=()
for f in "${TIMED[@]}"; do
  node --import tsx --test --test-reporter=spec --test-concurrency=1 "$f" || failed+=("$f")
done
if [ ${#failed[@]} -gt 0 ]; then
  # This shared VM sometimes runs at half speed for minutes, and the user-space delay
  # bridges then fall late. A real regression fails the second run as well.
  echo "test: ${#failed[@]} timing-sensitive file(s) failed (see above): ${failed[*]}; running those once more"
  sleep 5
  for f in "${failed[@]}"; do
    node --import tsx --test --test-reporter=spec --test-concurrency=1 "$f" || status=$?
  done
fi
exit $status
