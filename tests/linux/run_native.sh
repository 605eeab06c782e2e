#!/bin/sh
# Runs one Linux test program case natively, as tests/linux/CMakeLists.txt
# lists it (the native half of the native-vs-guest comparison):
#
#   run_native.sh [--temp-dir] [--unprivileged] [--timeout S] [--expect E]
#                 [--env K=V]... [--line TEXT]... -- PROGRAM [ARG]...
#
#   --expect E      exit:N (the default exit:0), signal:N (killed by signal
#                   N) or timeout (still running after --timeout seconds)
#   --temp-dir      run in a new empty directory, which must be empty again
#                   afterwards
#   --unprivileged  run as nobody (65534) when run as root, so that writing
#                   /etc is refused natively too (needs setpriv)
#   --env K=V       the program's environment: nothing else is inherited, as
#                   under minivmm
#   --line TEXT     a line the output must hold
#
# The program runs twice (each time in a fresh directory with --temp-dir)
# and must print the same both times: the output is meant to be compared
# with a run under minivmm. Exit status 0 when all holds, 77 (skipped) when
# --unprivileged cannot be had, 1 otherwise; the output is shown.
set -u

temp_dir=0 unprivileged=0 timeout_s=0 expect=exit:0
envs="" lines=""
nl='
'
while [ $# -gt 0 ]; do
  case "$1" in
    --temp-dir) temp_dir=1 ;;
    --unprivileged) unprivileged=1 ;;
    --timeout) timeout_s=$2; shift ;;
    --expect) expect=$2; shift ;;
    --env) envs="$envs$2$nl"; shift ;;
    --line) lines="$lines$2$nl"; shift ;;
    --) shift; break ;;
    *) echo "run_native.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $# -ge 1 ] || { echo "run_native.sh: no program" >&2; exit 2; }

case "$expect" in
  exit:*) want_status=${expect#exit:} ;;
  signal:*) want_status=$((128 + ${expect#signal:})) ;;
  timeout) want_status=124 ;;
  *) echo "run_native.sh: bad --expect $expect" >&2; exit 2 ;;
esac
[ "$expect" != timeout ] || [ "$timeout_s" != 0 ] || { echo "run_native.sh: timeout needs --timeout" >&2; exit 2; }

as_user=""
if [ "$unprivileged" = 1 ] && [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || { echo "SKIPPED: --unprivileged as root needs setpriv"; exit 77; }
  as_user="setpriv$nl--reuid=65534$nl--regid=65534$nl--clear-groups$nl--$nl"
fi
[ "$timeout_s" = 0 ] || as_user="timeout$nl$timeout_s$nl$as_user"

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
# shellcheck disable=SC3045 # dash and bash have ulimit -c
ulimit -c 0 2>/dev/null || true # the crashing cases leave no core files
[ "$unprivileged" = 0 ] || chmod 0755 "$work"

# run_once N PROGRAM [ARG]...: runs the program, its output to $work/out.N;
# sets $status. Fails the script when it leaves files in its directory.
run_once() {
  n=$1
  shift
  dir=$PWD
  if [ "$temp_dir" = 1 ]; then
    dir=$work/dir.$n
    mkdir "$dir" || exit 1
    [ "$unprivileged" = 0 ] || chmod 0777 "$dir"
  fi
  # $as_user and $envs split at newlines only, and are not globbed
  set -f
  old_ifs=$IFS
  IFS=$nl
  # shellcheck disable=SC2086
  (cd "$dir" && exec $as_user env -i $envs "$@") >"$work/out.$n"
  status=$?
  IFS=$old_ifs
  set +f
  left=""
  [ "$temp_dir" = 0 ] || left=$(find "$dir" -mindepth 1 -maxdepth 1 -printf ' %f')
  if [ -n "$left" ]; then
    cat "$work/out.$n"
    echo "FAILED: the program left files behind:$left"
    exit 1
  fi
}

fail=0
run_once 1 "$@"
cat "$work/out.1"
if [ "$status" != "$want_status" ]; then
  echo "FAILED: exit status $status, expected $want_status ($expect)"
  fail=1
fi
set -f
old_ifs=$IFS
IFS=$nl
for line in $lines; do
  grep -Fqx -- "$line" "$work/out.1" || { echo "FAILED: no line '$line' in the output"; fail=1; }
done
IFS=$old_ifs
set +f
if [ "$expect" != timeout ]; then
  run_once 2 "$@"
  [ "$status" = "$want_status" ] || { echo "FAILED: the second run's exit status is $status"; fail=1; }
  if ! cmp -s "$work/out.1" "$work/out.2"; then
    echo "FAILED: the second run printed something else:"
    diff "$work/out.1" "$work/out.2"
    fail=1
  fi
fi
exit $fail
