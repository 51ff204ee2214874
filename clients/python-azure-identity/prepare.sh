#!/usr/bin/env bash
# Prepares the Python client program in the current directory (the harness runs
# it in a writable copy of this folder): a .venv with exactly the pinned,
# hash-checked wheels of requirements.txt. Idempotent: an existing .venv built
# from the same requirements.txt is kept.
set -euo pipefail

PYTHON=${PYTHON:-python3}
fail() { echo "prepare.sh: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 ||
  fail "$PYTHON not found; install Debian's python3 and python3-venv (apt-get install -y python3 python3-venv)"
# The pinned wheels are CPython 3.11 builds (cffi, charset-normalizer).
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  fail "$("$PYTHON" -V 2>&1) found; the pins are for CPython 3.11 (Debian 12's python3)"
# Debian splits venv's pip bootstrap into python3-venv: without it "-m venv"
# leaves a half-made folder, so check first and say what to install.
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
  fail "python3 cannot create virtual environments; install python3-venv (apt-get install -y python3-venv)"

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
  .venv/bin/python -c 'import azure.identity, azure.keyvault.secrets, msal' 2>/dev/null; then
  echo "prepare.sh: .venv is up to date"
  exit 0
fi

echo "prepare.sh: creating .venv with $("$PYTHON" -V 2>&1)"
rm -rf .venv
"$PYTHON" -m venv .venv
echo "prepare.sh: installing the pinned wheels (requirements.txt, hash-checked)"
# --no-deps: requirements.txt lists every transitive dependency itself;
# --only-binary: wheels only, nothing is built here.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input \
  --no-deps --require-hashes --only-binary=:all: -r requirements.txt
.venv/bin/python -c 'import azure.identity, azure.keyvault.secrets, msal' ||
  fail "the installed packages do not import"
echo "$want" >"$stamp"
echo "prepare.sh: done"
