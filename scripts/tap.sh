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

# same_exports A B: the two addons (cmake-js's and node-gyp's builds of the same sources) export the same dynamic
# symbols; the differences are printed. Prebuilds are stripped, which keeps the dynamic symbol table.
same_exports() {
  local a b
  a=$(nm -D --defined-only "$1" | awk '{ print $NF }' | sort -u) && b=$(nm -D --defined-only "$2" | awk '{ print $NF }' | sort -u) || return 1
  echo "$1: $(wc -l <<<"$a") exported symbols; $2: $(wc -l <<<"$b")"
  diff <(echo "$a") <(echo "$b") | head -n 20
  [[ -n $a && $a == "$b" ]]
}
