#!/usr/bin/env bash
# One step of `make setup`: run an install command with its output in
# .state/logs/setup/<name>.log, then print a single line with the step's time:
#   setup: consul 1.22.7 ready (182 s)
# The label comes from what the installer printed last: a versioned binary such as
# .../consul-1.22.7, the directory of the pinned tool <name> -> <name>-<version>, or a
# plain label (no "/") such as "venv (Python 3.12.3, 104 packages)".
# On failure: the log's last lines and a non-zero exit.
#   usage: scripts/setup-step.sh <name> <command> [args...]
set -uo pipefail
name=$1
shift
cd "$(dirname "$0")/.."
logs=.state/logs/setup
mkdir -p "$logs"
log="$logs/$name.log"
start=$SECONDS
"$@" >"$log.out" 2>"$log"
rc=$?
elapsed=$((SECONDS - start))
cat "$log.out" >>"$log"
last=$(tail -n 1 "$log.out")
rm -f "$log.out"
if ((rc != 0)); then
  echo "setup: $name FAILED after $elapsed s (exit $rc); the end of $log:" >&2
  tail -n 25 "$log" | sed 's/^/  | /' >&2
  exit "$rc"
fi
label=$name
if [[ -n "$last" && "$last" != */* ]]; then
  label=$last
elif [[ -d "$last" && -L "$last/$name" ]]; then
  last=$(readlink "$last/$name")
fi
base=${last##*/}
if [[ "$base" == "$name"-* ]]; then
  label="$name ${base#"$name"-}"
fi
echo "setup: $label ready ($elapsed s)"
