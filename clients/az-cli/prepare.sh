#!/usr/bin/env bash
# Prepares the az CLI client program (run by the harness in a writable copy of this folder).
# Nothing to install or build: main.py and azlogin.py use the standard library and the az that
# Debian's azure-cli package puts on PATH. This only checks that az and the interpreter it runs
# on (its shebang) are there and can load what azlogin.py patches. Idempotent: it changes nothing.
set -euo pipefail

fail() { echo "prepare.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || fail "python3 not found; install it (apt-get install -y python3)"
AZ=$(command -v az) || fail "az not found on PATH: install Debian's azure-cli (apt-get install -y azure-cli)"
AZ_PYTHON=$(head -n1 "$(readlink -f "$AZ")" | sed -n 's/^#! *\([^ ]*\).*/\1/p')
[[ -x $AZ_PYTHON ]] || fail "$AZ is not Debian's azure-cli launcher (no python shebang); install it (apt-get install -y azure-cli)"
"$AZ_PYTHON" -c 'import azure.cli.core._profile, msrestazure, msal' ||
  fail "$AZ_PYTHON cannot load azure-cli's modules; reinstall azure-cli (apt-get install -y --reinstall azure-cli)"
echo "prepare.sh: using $AZ on $("$AZ_PYTHON" -V 2>&1)"
