# TAP lines for the check scripts (check-libtorch.sh, check-package.sh): source it, then `check DESCRIPTION COMMAND...`
# runs the command (its output to stderr) and prints "ok - ..." or "not ok - ...", counting both.
passed=0 failed=0
result() { # result OK|FAIL DESCRIPTION
  if [[ $1 == OK ]]; then echo "ok - $2"; passed=$((passed + 1)); else echo "not ok - $2"; failed=$((failed + 1)); fi
}
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >&2; then result OK "$what"; else result FAIL "$what"; fi
}
