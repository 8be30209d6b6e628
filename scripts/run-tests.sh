#!/usr/bin/env bash
# make test's pytest: the test tiers in groups, the groups side by side.
#
# Each group is one pytest process with a temporary directory of its own; the tiers start
# their servers on free loopback ports in their own directories, so groups cannot collide.
# Most of a tier's time is spent waiting (servers starting, orders going through the saga),
# so three groups overlap well on two cores. One line per group when it ends (result, time,
# log); the log of a group that failed is printed whole at the end.
#   TEST_JOBS=1 scripts/run-tests.sh     the groups one after another
#   scripts/run-tests.sh tests/unit -k x  a plain pytest run of what is given
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

if (($#)); then
  exec "$PY" -m pytest "$@"
fi

# Groups of about equal wall time (a cold CI run on 2 cores, 2026-12-01: core 11 min,
# backends 8 min, platform 4.5 min, before polyglot and deploy moved from core to
# platform); a tier not named here runs in the first group, so none is ever left out.
GROUP_NAMES=(core backends platform)
declare -A GROUP=(
  [core]="tests/unit tests/component tests/contracts tests/integration"
  [backends]="tests/brokers tests/postgres tests/discovery"
  [platform]="tests/cluster tests/containers tests/console tests/polyglot tests/deploy"
)
for dir in tests/*/; do
  dir=${dir%/}
  [[ $dir == tests/support || $dir == tests/__pycache__ ]] && continue
  grep -qw -- "$dir" <<<"${GROUP[*]}" || GROUP[core]+=" $dir"
done

logs=.state/logs/test
rm -rf "$logs"
mkdir -p "$logs"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/meshkit-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

run_group() {
  local name=$1 start=$SECONDS paths=() rc
  for dir in ${GROUP[$name]}; do [[ -d $dir ]] && paths+=("$dir"); done
  ((${#paths[@]})) || return 0
  "$PY" -m pytest -p no:cacheprovider --basetemp "$tmp/$name" "${paths[@]}" \
    >"$logs/$name.log" 2>&1
  rc=$?
  echo "$rc" >"$tmp/$name.rc"
  local summary
  summary=$(grep -E '^(=+ .* in [0-9.]+s.*=+|[0-9]+ passed.*)$' "$logs/$name.log" | tail -1)
  echo "test: $name ($((SECONDS - start)) s, rc=$rc) ${summary//=/} [$logs/$name.log]"
}

max_jobs=${TEST_JOBS:-3}
for name in "${GROUP_NAMES[@]}"; do
  while (($(jobs -rp | wc -l) >= max_jobs)); do wait -n; done
  run_group "$name" &
done
wait
failed=()
for name in "${GROUP_NAMES[@]}"; do
  [[ -f $tmp/$name.rc && $(<"$tmp/$name.rc") != 0 ]] && failed+=("$name")
done
for name in "${failed[@]}"; do
  echo "================ $name: $logs/$name.log ================"
  cat "$logs/$name.log"
done
((${#failed[@]} == 0)) || { echo "test: failed: ${failed[*]}"; exit 1; }
echo "test: all groups passed"
