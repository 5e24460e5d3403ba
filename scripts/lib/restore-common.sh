# Sourced (not run) by scripts/restore-full.sh and scripts/restore-drill.sh: their shared arguments
# `[--stack NAME] [RUN_ID|latest]`, their messages, and the check that the stack's backup
# container runs, which both work through.

# Messages name the script that failed: "restore-full: ..." or "restore-drill: ...".
say() { echo "$(basename "$0" .sh): $*" >&2; }

# The usage is the script's header comment: the lines after the shebang up to the first other one.
usage() { sed -n '2,/^[^#]/{/^#/p;}' "$0"; }

# Sets `stack`, `run` and `backup` (the backup container's name) for the script.
parse_restore_args() {
  stack="dev"
  run="latest"
  while [ $# -gt 0 ]; do
    case "$1" in
      --stack) stack="${2:?--stack needs a stack name}"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) run="$1"; shift ;;
    esac
  done
  backup="ceres-${stack}-backup"
}

# Exits 2 unless docker answers and the backup container runs. $1 ends the advice that follows
# "run 'pulumi up' for stack NAME", as each script's next step differs.
require_backup_container() {
  if ! command -v docker >/dev/null 2>&1; then
    say "docker is not on PATH: run this on the apps host (or set DOCKER_HOST to it)"
    exit 2
  fi
  if [ "$(docker inspect --format '{{.State.Running}}' "$backup" 2>/dev/null)" != "true" ]; then
    say "the backup container $backup is not running: run 'pulumi up' for stack $stack $1"
    exit 2
  fi
}
