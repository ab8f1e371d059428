# shellcheck shell=bash
# Sourced by the other scripts in this directory, not run: strict mode, an error trap that
# names the step that failed (so a script never ends silently), progress lines with the
# elapsed time, and helpers for driving the local target.
#
#   source "$(dirname "$0")/lib.sh"
#   step "building the binaries"   # progress, and what the error trap names

set -Eeuo pipefail

script_name=${0##*/}
script_started=$SECONDS
current_step="start"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The static (musl) release build: what hosts receive, and what scripts/build-static builds.
release_target=x86_64-unknown-linux-musl
bin_dir="$root/target/$release_target/release"

# Names what the script does now: printed with the elapsed time, and named by the error trap
# when a command fails.
step() {
  current_step=$*
  printf '[%s %4ds] %s\n' "$script_name" $((SECONDS - script_started)) "$*" >&2
}

# Prints the total time; the last line of a script that got to its end.
finished() {
  printf '[%s %4ds] done\n' "$script_name" $((SECONDS - script_started)) >&2
}

on_error() { # status line command
  # A failing command substitution or pipeline subshell is reported by its parent.
  [ "$BASH_SUBSHELL" = 0 ] || return 0
  printf '%s: FAILED at step "%s" (line %s: %s, exit status %s)\n' \
    "$script_name" "$current_step" "$2" "$3" "$1" >&2
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

# Builds static release binaries into $bin_dir: cargo build arguments (--bin X).
build_release() {
  cargo build --quiet --release --locked --target "$release_target" "$@"
}

# Builds the benchmarks' load generator into $bin_dir/examples. On its own: an example
# brings the dev-dependencies' features into its build, so built beside the helpers it would
# build them a second time, with features other than those that ship.
build_loadgen() {
  build_release --example loadgen
}

# A loopback TCP port that was free a moment ago, chosen below the kernel's ephemeral range
# so no later bind to port 0 or outgoing connection can be handed the same port first. A
# port handed out is claimed for 10 minutes (a file in /tmp/bluegreen-ports), so two calls
# before either port is bound (a target's web, slot and maintenance ports) never get the same.
free_port() {
  python3 - <<'PY'
import os, random, socket, time
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
claims = "/tmp/bluegreen-ports"
os.makedirs(claims, exist_ok=True)
def claim(port):
    path = os.path.join(claims, str(port))
    try:
        if time.time() - os.stat(path).st_mtime > 600:
            os.remove(path)
    except OSError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except OSError:
        return False
for port in random.sample(range(10000, max(low, 10001)), min(1000, max(low - 10000, 1))):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    if claim(port):
        print(port)
        break
else:
    raise SystemExit(f"no free loopback port between 10000 and {low}")
PY
}

# The epoch time in milliseconds.
now_ms() {
  local us=${EPOCHREALTIME/./}
  echo "${us%???}"
}

# Copies stdin to stdout with each line prefixed by the epoch time in microseconds it was
# read at (the form `loadgen marks` reads).
stamp_lines() {
  local line
  while IFS= read -r line; do
    printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"
  done
}

# Waits until no run holds the app's lock in state directory $1: a deploy reports before it
# retires the old slot, which the host then does on its own.
wait_for_lock() { # state_dir
  local lock="$1/lock" waited=0
  while [ -s "$lock" ]; do
    sleep 0.05
    waited=$((waited + 1))
    if [ "$waited" -gt 1200 ]; then echo "the app's lock is still held after 60 s" >&2; return 1; fi
  done
}

# Runs the orchestrator the action runs ($bin_dir/bluegreen-action, built by the caller) against the local target in directory $1, with the target's inputs (its BG_*
# variables) and then NAME=value inputs from the other arguments (NAME as in INPUT_NAME).
# Its job log goes to stdout.
run_orchestrator() { # target_dir [NAME=value ...]
  local target=$1 key value
  shift
  local -a vars=()
  while IFS='=' read -r key value; do
    case "$key" in BG_*) vars+=("INPUT_${key#BG_}=$value") ;; esac
  done < "$target/env"
  vars+=("INPUT_SSH_KEY=$(cat "$target/ssh_key")" "INPUT_KNOWN_HOSTS=$(cat "$target/known_hosts")")
  vars+=("RUNNER_TEMP=$target" "BLUEGREEN_HELPERS=$bin_dir/bluegreen")
  for value in "$@"; do vars+=("INPUT_$value"); done
  # With orchestrator_peak_file set, GNU time writes the run's peak resident KiB there
  # (it runs env, so the inputs, the key among them, are never in its own environment).
  local -a measure=()
  if [ -n "${orchestrator_peak_file:-}" ]; then
    measure=(/usr/bin/time -f %M -o "$orchestrator_peak_file")
  fi
  "${measure[@]}" env "${vars[@]}" "$bin_dir/bluegreen-action"
}

# Runs `command: setup` on the local target in directory $1 through the orchestrator
# (built by the caller), so it is ready for a first deploy; its log only when it fails.
setup_target() { # target_dir
  if ! GITHUB_OUTPUT="$1/setup-outputs" run_orchestrator "$1" COMMAND=setup > "$1/setup.log" 2>&1; then
    cat "$1/setup.log" >&2
    echo "command: setup of the local target failed" >&2
    return 1
  fi
}
