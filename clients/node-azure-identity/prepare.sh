#!/usr/bin/env bash
# Installs the pinned packages of package-lock.json into ./node_modules.
# The harness runs it in a writable copy of this folder; running it again
# reinstalls the same tree (npm ci starts from an empty node_modules).
set -euo pipefail
cd "$(dirname "$0")"

# @azure/identity 4.13 and @azure/msal-node 5 need Node.js 20 or newer
# (Debian 12's nodejs package is 18).
if ! command -v node >/dev/null 2>&1; then
  echo "prepare.sh: node not found: install Node.js 20 or newer (e.g. the NodeSource nodejs 20.x package)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "prepare.sh: node $(node --version) is too old: @azure/identity 4.13 needs Node.js >= 20; install Node.js 20 or newer (e.g. the NodeSource nodejs 20.x package)" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "prepare.sh: npm not found: install npm (it ships with Node.js 20 from NodeSource; Debian: apt-get install npm)" >&2
  exit 1
fi

# Exactly the lock file's tree; cached tarballs first; errors only (on stderr).
npm ci --omit=dev --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null
