#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine (or any machine with Python >= 3.11) for CERES:
# a virtualenv in .venv with CERES installed. `setup.sh test` also installs what the tests run:
# the test extra from PyPI and the real programs from Debian that check rendered configs.
# Run by plan.sh and test.sh; safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
# Programs the tests run for real, each with the Debian package that brings it. A program
# already on the machine (from any source) is not installed again.
TEST_PROGRAMS=(
  "initdb:postgresql"
  "curl:curl"
  "wget:wget"
  "promtool:prometheus"
  "amtool:prometheus-alertmanager"
  "node:nodejs"
  "npm:npm"
  "redis-server:redis-server"
  "redis-cli:redis-tools"
  "php:php-cli"
  "ruby:ruby"
  "openssl:openssl"
  "git:git"
  "restic:restic"
  "busybox:busybox"
  "setpriv:util-linux"
  "pgbackrest:pgbackrest"  # point-in-time recovery, run for real
  # The HA tier, run for real from its rendered configs (failover tests and validators).
  "patroni:patroni"
  "etcd:etcd-server"
  "etcdctl:etcd-client"  # the point-in-time restore clears Patroni's keys with it
  "/usr/bin/python3:python3"  # the pgBackRest agent runs on Debian's python3, as in the member image
  "haproxy:haproxy"
  "keepalived:keepalived"
  "redis-sentinel:redis-sentinel"
  "ip:iproute2"  # network namespaces for the Keepalived failover test
)
# Libraries the tests load, with no program to look for: installed unless dpkg has them.
TEST_LIBRARIES=(
  "ruby-activesupport"  # Redmine's settings script runs against real ActiveSupport
)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  [ $# -eq 0 ] && return 0
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: CERES needs Python 3.11 or newer as \$PYTHON (now: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

have_program() {
  # Debian keeps PostgreSQL's server programs off PATH, under /usr/lib/postgresql/<major>/bin.
  command -v "$1" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null
}

extra=""
if [ "${1:-}" = "test" ]; then
  extra="[test]"
  packages=()
  for entry in "${TEST_PROGRAMS[@]}"; do
    have_program "${entry%%:*}" || packages+=("${entry#*:}")
  done
  apt_install "${packages[@]}" "${TEST_LIBRARIES[@]}"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra}"
