#!/usr/bin/env bash
# The lint and format gate (`npm run lint`; `npm run format` fixes what the formatters can): typescript-eslint,
# Prettier and clang-format, one TAP line each, so .ci/run counts them like tests. A tool's findings go to stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
native=(native/*.cc native/*.h native/cuda/*.cc)
status=0

# check NAME COMMAND...: "ok - NAME" when COMMAND succeeds, else its output on stderr and "not ok - NAME".
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then
    echo "ok - lint: $name"
  else
    printf '%s\n' "$out" >&2
    echo "not ok - lint: $name"
    status=1
  fi
}

check "typescript-eslint" npx --no-install eslint --max-warnings 0 .
check "prettier (lib, test, scripts)" npx --no-install prettier --check --log-level warn .
if command -v clang-format >/dev/null; then
  check "clang-format (native/)" clang-format --dry-run --Werror "${native[@]}"
else
  echo "not ok - lint: clang-format (native/): clang-format is not installed (apt-get install clang-format)"
  status=1
fi
exit $status
