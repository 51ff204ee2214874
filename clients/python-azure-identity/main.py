"""idharness client program: azure-identity and MSAL for Python speaking the
JSON-lines protocol of clients/PROTOCOL.md.

    python main.py managed-identity | default | workload-identity | msal-managed-identity

stdin: one request per line; stdout: the hello line, then one result per request
(any order, by id); stderr: logs. Each credential is built once and reused,
because token caches are part of what the harness judges.
"""

import importlib.metadata
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time

KIND = sys.argv[1] if len(sys.argv) > 1 else ""
KINDS = ("managed-identity", "default", "workload-identity", "msal-managed-identity")
MODE = os.environ.get("IDHARNESS_MODE") or "imds"

# SDK logs go to stderr, which the harness keeps as this client's log.
logging.basicConfig(
    stream=sys.stderr,
    level=getattr(logging, (os.environ.get("AZURE_LOG_LEVEL") or "warning").upper(), logging.WARNING),
    format=f"[python-azure-identity {KIND}] %(asctime)s %(name)s %(levelname)s %(message)s",
)
log = logging.getLogger("idharness")


def trust_extra_ca():
    """Trust IDHARNESS_CA_FILE besides the usual roots (never instead of them).

    requests (under azure-core and MSAL) reads REQUESTS_CA_BUNDLE, which
    *replaces* its roots; so point it at certifi's roots plus the extra CA.
    TLS verification stays on.
    """
    extra = os.environ.get("IDHARNESS_CA_FILE")
    if not extra:
        return
    import certifi

    with open(certifi.where(), encoding="utf-8") as f:
        roots = f.read()
    with open(extra, encoding="utf-8") as f:
        ca = f.read()
    fd, path = tempfile.mkstemp(prefix="idharness-ca-", suffix=".pem")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(roots.rstrip("\n") + "\n" + ca)
    os.environ["REQUESTS_CA_BUNDLE"] = path
    os.environ["SSL_CERT_FILE"] = path
    import atexit

    atexit.register(lambda: os.path.exists(path) and os.remove(path))


trust_extra_ca()

# Imported after the CA setup: nothing reads it at import, but keep it obvious.
import msal  # noqa: E402
import requests  # noqa: E402
from azure.core.credentials import AccessToken  # noqa: E402
from azure.identity import (  # noqa: E402
    DefaultAzureCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)
from azure.keyvault.secrets import SecretClient  # noqa: E402

# ---- stdout: one JSON object per line, writes serialized --------------------

_out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---- the identity to ask for ------------------------------------------------


class UnsupportedSelector(Exception):
    """The SDK cannot express the identity asked for."""


def parse_identity(s):
    """IDHARNESS_IDENTITY: "system"/"" | client_id=ID | object_id=ID | resource_id=ARM-ID
    (msi_res_id= and mi_res_id= are taken as resource_id). Returns (kind, value)."""
    s = (s or "").strip()
    if s in ("", "system"):
        return "system", None
    kind, _, value = s.partition("=")
    if kind in ("msi_res_id", "mi_res_id"):
        kind = "resource_id"
    if kind not in ("client_id", "object_id", "resource_id") or not value:
        raise ValueError(f"IDHARNESS_IDENTITY={s}: want system, client_id=ID, object_id=ID or resource_id=ARM-ID")
    return kind, value


class MsalCredential:
    """An msal.ManagedIdentityClient seen as an azure-core TokenCredential, so
    that SecretClient runs on the same client and token cache. expires_on is
    MSAL's own belief: now + the expires_in of its result."""

    def __init__(self, app):
        self.app = app

    def token(self, resource):
        result = self.app.acquire_token_for_client(resource=resource)
        now = time.time()
        if result and "access_token" in result:
            expires_on = int(now + result["expires_in"]) if "expires_in" in result else None
            return result["access_token"], expires_on
        raise MsalResultError(result)

    def get_token(self, *scopes, **kwargs):
        scope = scopes[0]
        resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
        token, expires_on = self.token(resource)
        return AccessToken(token, expires_on or 0)


class MsalResultError(Exception):
    """MSAL returns errors as a dict: error and error_description."""

    def __init__(self, result):
        result = result or {}
        self.code = result.get("error") or "unknown_error"
        super().__init__(f"{self.code}: {result.get('error_description', '')}".rstrip(": "))


def build():
    """Build the one credential this process uses; raises the reason every
    request is then answered with."""
    kind, value = parse_identity(os.environ.get("IDHARNESS_IDENTITY"))
    if KIND == "managed-identity":
        # 1.27 takes client_id= or identity_config={"object_id"|"resource_id": …};
        # MSAL puts them on the wire (IMDS: client_id, object_id, msi_res_id;
        # App Service: client_id, object_id, mi_res_id).
        if kind == "system":
            return ManagedIdentityCredential()
        if kind == "client_id":
            return ManagedIdentityCredential(client_id=value)
        return ManagedIdentityCredential(identity_config={kind: value})
    if KIND == "default":
        # Only the production credentials (environment, workload identity,
        # managed identity), as AZURE_TOKEN_CREDENTIALS=prod would do; said with
        # the exclude_* keywords so that no environment variable can bring back
        # az, azd, PowerShell, VS Code, the shared cache or the broker.
        opts = dict(
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_developer_cli_credential=True,
            exclude_interactive_browser_credential=True,
            exclude_broker_credential=True,
        )
        if MODE == "workload-identity":
            # The harness's authority is not one login.microsoftonline.com
            # vouches for, and nothing may leave the cluster: instance discovery
            # off, as every workload identity client here (docs/workload-identity.md).
            opts["disable_instance_discovery"] = True
        if kind == "client_id":
            opts["managed_identity_client_id"] = value  # also the workload identity's client ID
        elif kind != "system":
            raise UnsupportedSelector(
                f"DefaultAzureCredential {version('azure-identity')} selects a user-assigned identity only by client ID "
                f"(managed_identity_client_id), not by {kind}"
            )
        elif MODE != "workload-identity":
            # None (not absent) forces the system-assigned identity over any
            # AZURE_CLIENT_ID; in workload identity mode AZURE_CLIENT_ID names
            # the identity, so it must stay.
            opts["managed_identity_client_id"] = None
        return DefaultAzureCredential(**opts)
    if KIND == "workload-identity":
        if kind not in ("system", "client_id"):
            raise UnsupportedSelector(
                f"WorkloadIdentityCredential selects an identity only by client ID (AZURE_CLIENT_ID or client_id), not by {kind}"
            )
        # tenant, client ID, token file and authority from AZURE_TENANT_ID,
        # AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST.
        opts = {"disable_instance_discovery": True}  # as above
        if kind == "client_id":
            opts["client_id"] = value
        return WorkloadIdentityCredential(**opts)
    if KIND == "msal-managed-identity":
        if MODE == "workload-identity":
            raise UnsupportedSelector("msal.ManagedIdentityClient has no workload identity mode")
        if kind == "system":
            mi = msal.SystemAssignedManagedIdentity()
        else:
            mi = msal.UserAssignedManagedIdentity(**{kind: value})
        # A plain requests.Session: no retry adapter, as MSAL's own recipe
        # leaves retry to the caller; MSAL adds its 429/5xx throttle cache.
        app = msal.ManagedIdentityClient(mi, http_client=requests.Session(), token_cache=msal.TokenCache())
        return MsalCredential(app)
    raise ValueError(f"unknown client {KIND!r}; want one of {', '.join(KINDS)}")


# ---- requests ------------------------------------------------------------------

credential = build_error = None
try:
    credential = build()
    log.info("mode=%s identity=%s credential built", MODE, os.environ.get("IDHARNESS_IDENTITY") or "system")
except Exception as ex:  # answered to every request
    build_error = ex
    log.warning("cannot build the credential: %s", ex)

_secret_clients = {}  # vaultUrl -> SecretClient, all on the one credential
_secret_lock = threading.Lock()


def secret_client(vault_url):
    with _secret_lock:
        sc = _secret_clients.get(vault_url)
        if sc is None:
            # Challenge-resource verification stays on (the SDK default).
            sc = SecretClient(vault_url, credential)
            _secret_clients[vault_url] = sc
        return sc


def handle(req):
    rid = req.get("id")
    if build_error is not None:
        raise build_error
    typ = req.get("type")
    if typ == "get_token":
        resource = req.get("resource")
        if not resource:
            raise ValueError("get_token: missing resource")
        if isinstance(credential, MsalCredential):
            # MSAL takes the resource itself.
            token, expires_on = credential.token(resource)
        else:
            # resource + "/.default", kept verbatim: azure-identity turns the
            # scope back into the resource by cutting "/.default".
            t = credential.get_token(resource + "/.default")
            token, expires_on = t.token, t.expires_on
        res = {"type": "result", "id": rid, "ok": True, "token": token}
        if expires_on:
            res["expiresOn"] = int(expires_on)
        return res
    if typ == "get_secret":
        if not req.get("vaultUrl") or not req.get("name"):
            raise ValueError("get_secret: want vaultUrl and name")
        s = secret_client(req["vaultUrl"]).get_secret(req["name"])
        return {"type": "result", "id": rid, "ok": True, "value": s.value}
    raise ValueError(f"unknown request type {typ!r}")


def error_result(rid, ex):
    msg = " | ".join(l.strip() for l in str(ex).splitlines() if l.strip()) or repr(ex)
    etype = ex.code if isinstance(ex, MsalResultError) else type(ex).__name__
    return {"type": "result", "id": rid, "ok": False, "error": msg, "errorType": etype}


def run(req):
    try:
        res = handle(req)
    except BaseException as ex:  # every request is answered exactly once
        log.warning("request %s failed: %s: %s", req.get("id"), type(ex).__name__, ex)
        res = error_result(req.get("id"), ex)
    emit(res)


def main():
    sdks = {"azure-core": version("azure-core"), "msal": version("msal"), "azure-keyvault-secrets": version("azure-keyvault-secrets")}
    if KIND != "msal-managed-identity":
        sdks["azure-identity"] = version("azure-identity")
    emit({
        "type": "hello", "protocol": 1, "language": "python",
        "runtime": f"{platform.python_implementation()} {platform.python_version()}", "sdks": sdks,
    })
    threads = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("ignoring a line that is not a JSON object: %s", line[:200])
            continue
        # A thread per request: the harness may send several at once, as an
        # application with many threads would.
        t = threading.Thread(target=run, args=(req,), name=f"req-{req.get('id')}")
        t.start()
        threads.append(t)
        threads = [t for t in threads if t.is_alive()]
    for t in threads:  # end of input: answer what is still running
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
