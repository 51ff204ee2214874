"""idharness client program (clients/PROTOCOL.md) for the az CLI: `az login --identity`, then one
`az account get-access-token --resource R` process per get_token request.

Standard library only: everything Azure happens inside the az processes, so what the fake sees
is exactly what az does (its own retries, its own per-process token cache, which is empty at
every invocation). Run with any python3; az runs on the interpreter in /usr/bin/az's shebang.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
AZ = shutil.which("az")

# A private profile for this process: never the user's ~/.azure, never shared with another
# client. Telemetry off: az would otherwise start an uploader to the internet after each
# command, traffic that has nothing to do with managed identity (it turns off no check).
CONFIG_DIR = tempfile.mkdtemp(prefix="idharness-az-")
ENV = dict(os.environ, AZURE_CONFIG_DIR=CONFIG_DIR, AZURE_CORE_COLLECT_TELEMETRY="false")

out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def log(msg):
    sys.stderr.write("az-cli: " + msg + "\n")
    sys.stderr.flush()


def az_python():
    """The interpreter az runs on: /usr/bin/az is `#!/usr/bin/python3` + runpy (Debian)."""
    with open(os.path.realpath(AZ), "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    return first[2:].split()[0] if first.startswith("#!") else sys.executable


def run(argv, timeout=None):
    return subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=timeout)


def az_error(p):
    """az's stderr, last meaningful lines (warnings such as "MSI: wait: ..." included)."""
    lines = [l.strip() for l in (p.stderr or "").splitlines() if l.strip()]
    return " | ".join(lines[-6:]) or "az exited %d with no output" % p.returncode


def hello():
    sdks, runtime = {}, "unknown"
    if AZ:
        try:
            # azure-cli and azure-cli-core as az itself reports them.
            v = json.loads(run([AZ, "version", "-o", "json"], 120).stdout)
            for k in ("azure-cli", "azure-cli-core"):
                if k in v:
                    sdks[k] = v[k]
            # The runtime and libraries az loads: msrestazure does the IMDS requests in this
            # az version (auth/adal_authentication.py); msal is what az uses for other logins.
            code = ("import json,platform,msal,msrestazure;print(json.dumps([platform.python_implementation()"
                    "+' '+platform.python_version(),msal.__version__,msrestazure.__version__]))")
            runtime, sdks["msal"], sdks["msrestazure"] = json.loads(run([az_python(), "-c", code], 60).stdout)
        except Exception as e:  # still say hello; requests will carry the reason
            log("version probe failed: %r" % e)
    emit({"type": "hello", "protocol": 1, "language": "az-cli", "runtime": runtime, "sdks": sdks})


def username():
    """IDHARNESS_IDENTITY → `--username` value (None: system-assigned). az 2.45 takes one value
    and works out its kind: an ARM ID is msi_res_id; otherwise it tries it as client_id and, on
    a 400, as object_id (one extra IMDS request for object IDs)."""
    ident = os.environ.get("IDHARNESS_IDENTITY", "")
    if ident in ("", "system"):
        return None
    kind, _, value = ident.partition("=")
    if kind not in ("client_id", "object_id", "resource_id") or not value:
        raise ValueError("unsupported IDHARNESS_IDENTITY %r" % ident)
    return value


class Login:
    """The credential: one `az login --identity` for the whole process, on first use."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done = False
        self.error = None  # (message, errorType) once login failed: every request reports it

    def ensure(self):
        with self.lock:
            if not self.done:
                self.done = True
                self.error = self._login()
            return self.error

    def _login(self):
        if not AZ:
            return ("az not found on PATH (apt-get install -y azure-cli)", "az missing")
        try:
            user = username()
        except ValueError as e:
            return (str(e), "ValueError")
        # azlogin.py = `az login --identity --allow-no-subscriptions` with ARM's subscription
        # list answered empty (see there why).
        argv = [az_python(), os.path.join(HERE, "azlogin.py"), "-o", "none"]
        if user:
            argv += ["--username", user]
        p = run(argv)
        if p.returncode != 0:
            return (az_error(p), "az exit %d" % p.returncode)
        return None


LOGIN = Login()


def expires_on(out):
    """When az says the token expires: `expires_on` (epoch, newer az), else `expiresOn`, which
    az formats from the same epoch with datetime.fromtimestamp (local time, no zone)."""
    if out.get("expires_on") is not None:
        return int(out["expires_on"])
    if out.get("expiresOn"):
        return int(datetime.datetime.strptime(out["expiresOn"], "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return None


def get_token(req):
    err = LOGIN.ensure()
    if err:
        return {"ok": False, "error": err[0], "errorType": err[1]}
    p = run([AZ, "account", "get-access-token", "--resource", req.get("resource", ""), "-o", "json"])
    if p.returncode != 0:
        return {"ok": False, "error": az_error(p), "errorType": "az exit %d" % p.returncode}
    out = json.loads(p.stdout)
    res = {"ok": True, "token": out["accessToken"]}
    exp = expires_on(out)
    if exp is not None:
        res["expiresOn"] = exp
    return res


def handle(req):
    try:
        if req.get("type") == "get_token":
            res = get_token(req)
        else:
            res = {"ok": False, "error": "unsupported request type %r" % req.get("type"),
                   "errorType": "Unsupported"}
    except Exception as e:
        res = {"ok": False, "error": str(e), "errorType": type(e).__name__}
    emit(dict({"type": "result", "id": req.get("id")}, **res))


def main():
    hello()
    threads = []
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            log("bad request line %r: %s" % (line, e))
            continue
        t = threading.Thread(target=handle, args=(req,))  # requests may overlap
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    shutil.rmtree(CONFIG_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
