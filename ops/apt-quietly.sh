# Sourced by the ops/install-*.sh scripts: a scratch folder removed on exit, and `quietly`,
# which runs a step with its output kept in a log that is shown only when the step fails
# (then the script stops). Set INSTALLER (the script's name, for the failure line) first.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$work/apt.log"
quietly() {
  if ! "$@" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "$INSTALLER: failed: $*" >&2
    exit 1
  fi
}
export DEBIAN_FRONTEND=noninteractive
