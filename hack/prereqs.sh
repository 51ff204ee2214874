#!/usr/bin/env bash
# hack/prereqs.sh: install what `make e2e` and `make chaos` need on a fresh
# Debian machine, then make a Docker engine answer (hack/docker.sh).
#
# The list below is the one place that names the packages: the README's
# Set-up section, the node image build's preflight error and this script are
# checked against it by a test (internal/nodeimage, TestPrereqs*).
#
#   hack/prereqs.sh          install every missing package with one apt-get, then Docker
#   hack/prereqs.sh --list   print "command package" pairs and exit
#   hack/prereqs.sh --check  exit 1 naming every missing package, install nothing
#   hack/prereqs.sh --clients  the same for the client programs' runtimes
#                            (clients/*/client.yaml), which `make test` runs:
#                            install what is missing, no Docker
#
# Not root: nothing is installed; the script names every missing package and
# the one command that installs them all.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# command  Debian package that provides it
prereqs=(
  "dockerd docker.io"
  "mmdebstrap mmdebstrap"
)

# What the client programs under clients/ run on, beyond Go: the az CLI,
# a JDK and Maven (the Java program is built by Maven). Node.js >= 20 and
# Python 3 with venv come with the project's machines; the programs'
# prepare.sh scripts name what to install when they are missing.
client_prereqs=(
  "az azure-cli"
  "javac openjdk-17-jdk-headless"
  "mvn maven"
)

say() { printf '[prereqs] %s\n' "$*"; }

clients=false
if [ "${1:-}" = "--clients" ]; then
  clients=true
  prereqs=("${client_prereqs[@]}")
  shift
fi

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${prereqs[@]}"
  exit 0
fi

missing=()
for p in "${prereqs[@]}"; do
  read -r cmd pkg <<<"$p"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ "${1:-}" = "--check" ]; then
  if ((${#missing[@]})); then
    say "missing: ${missing[*]}; install them all with: make prereqs (as root)"
    exit 1
  fi
  exit 0
fi

if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    say "error: missing ${missing[*]}, and installing needs root. Run as root:" >&2
    say "  make prereqs        (or: apt-get install -y --no-install-recommends ${missing[*]})" >&2
    exit 1
  fi
  say "installing ${missing[*]} from apt (a first run only; about 1 min)"
  start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "installed in $(($(date +%s) - start))s"
else
  say "packages present: $(printf '%s ' "${prereqs[@]}" | awk '{for (i = 2; i <= NF; i += 2) printf "%s ", $i}')"
fi

$clients && exit 0
GO=${GO:-go} "$here/hack/docker.sh"
