// idharness client program: @azure/identity and @azure/msal-node speaking the
// JSON-lines protocol of clients/PROTOCOL.md.
//
//   node main.mjs managed-identity | default | workload-identity | msal-managed-identity
//
// stdin: one request per line; stdout: the hello line, then one result per
// request (any order, by id); stderr: logs. Each credential is built once and
// reused, because token caches are part of what the harness judges.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import * as tls from "node:tls";

const KIND = process.argv[2] ?? "";
const KINDS = ["managed-identity", "default", "workload-identity", "msal-managed-identity"];
const MODE = process.env.IDHARNESS_MODE ?? "imds";
const log = (...a) => console.error(`[node-azure-identity ${KIND}]`, ...a);

// DefaultAzureCredential reads AZURE_TOKEN_CREDENTIALS when it is built:
// "prod" keeps only EnvironmentCredential, WorkloadIdentityCredential and
// ManagedIdentityCredential, so the chain never runs az, azd, PowerShell or
// VS Code. The harness strips the variable from the environment it passes,
// so the program sets it itself (read in 4.13.1's defaultAzureCredential.js).
if (KIND === "default") process.env.AZURE_TOKEN_CREDENTIALS = "prod";

// The Azure SDK logs go to stderr (@azure/logger reads AZURE_LOG_LEVEL when
// loaded): warnings unless the environment asks for more.
process.env.AZURE_LOG_LEVEL ||= "warning";

const identityMod = await import("@azure/identity");
const msal = await import("@azure/msal-node");
const { SecretClient } = await import("@azure/keyvault-secrets");

// ---- hello: the versions really loaded ----------------------------------

// The version of the package that `specifier` resolves to from the folder
// `fromDir` (as Node's resolver finds it), read from its package.json: walk up
// from its entry file, since packages' "exports" hide "./package.json".
function loadedVersion(specifier, fromDir = dirname(fileURLToPath(import.meta.url))) {
  let dir = dirname(createRequire(join(fromDir, "noop.js")).resolve(specifier));
  for (;;) {
    try {
      const pj = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      if (pj.name === specifier) return { version: pj.version, dir };
    } catch { /* no package.json here */ }
    const up = dirname(dir);
    if (up === dir) return { version: "unknown", dir: "" };
    dir = up;
  }
}

const sdks = {};
const id = loadedVersion("@azure/identity");
if (KIND === "msal-managed-identity") {
  sdks["@azure/msal-node"] = loadedVersion("@azure/msal-node").version;
} else {
  sdks["@azure/identity"] = id.version;
  // The MSAL that @azure/identity itself loads (resolved from its folder).
  sdks["@azure/msal-node"] = loadedVersion("@azure/msal-node", id.dir).version;
}
sdks["@azure/keyvault-secrets"] = loadedVersion("@azure/keyvault-secrets").version;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}
emit({ type: "hello", protocol: 1, language: "javascript", runtime: `Node.js ${process.version}`, sdks });

// ---- the identity to ask for -----------------------------------------------

// IDHARNESS_IDENTITY: "system"/"" | client_id=ID | object_id=ID | resource_id=ARM-ID
// (msi_res_id= and mi_res_id= are accepted for resource_id, as the harness does).
function parseIdentity(s) {
  s = (s ?? "").trim();
  if (s === "" || s === "system") return { kind: "system" };
  const i = s.indexOf("=");
  let kind = i > 0 ? s.slice(0, i) : s;
  const value = i > 0 ? s.slice(i + 1) : "";
  if (kind === "msi_res_id" || kind === "mi_res_id") kind = "resource_id";
  if (!["client_id", "object_id", "resource_id"].includes(kind) || !value) {
    throw new Error(`IDHARNESS_IDENTITY=${s}: want system, client_id=ID, object_id=ID or resource_id=ARM-ID`);
  }
  return { kind, value };
}

// Extra CAs (IDHARNESS_CA_FILE) for the HTTPS calls (authority, Key Vault),
// added to Node's roots, never replacing them. NODE_EXTRA_CA_CERTS, which the
// harness also sets, already covers it; passing it explicitly makes the
// program right when only IDHARNESS_CA_FILE is set. TLS verification stays on.
let tlsOptions;
if (process.env.IDHARNESS_CA_FILE) {
  tlsOptions = { ca: [...tls.rootCertificates, readFileSync(process.env.IDHARNESS_CA_FILE, "utf8")] };
}
const clientOptions = tlsOptions ? { tlsOptions } : {};

class Unsupported extends Error {
  constructor(message) { super(message); this.name = "UnsupportedSelector"; }
}

// An MSAL ManagedIdentityApplication seen as a TokenCredential, so that the
// Key Vault client can use it too. expiresOnTimestamp is MSAL's own expiresOn.
function msalCredential(app) {
  return {
    async getToken(scopes) {
      const scope = Array.isArray(scopes) ? scopes[0] : scopes;
      const r = await app.acquireToken({ resource: scope.replace(/\/\.default$/, "") });
      return { token: r.accessToken, expiresOnTimestamp: r.expiresOn.getTime(), tokenType: "Bearer" };
    },
  };
}

// Build the credential once. Returns {credential} or throws (the reason every
// request then gets).
function build() {
  const who = parseIdentity(process.env.IDHARNESS_IDENTITY);
  switch (KIND) {
    case "managed-identity": {
      // 4.13 takes exactly one of clientId, objectId, resourceId (IMDS sends
      // client_id, object_id, msi_res_id; App Service client_id, principal_id, mi_res_id).
      const sel = { client_id: "clientId", object_id: "objectId", resource_id: "resourceId" }[who.kind];
      return new identityMod.ManagedIdentityCredential(sel ? { ...clientOptions, [sel]: who.value } : clientOptions);
    }
    case "default": {
      const opts = { ...clientOptions };
      if (MODE === "workload-identity") {
        // The harness's fake authority is not an Azure host that
        // login.microsoftonline.com vouches for: instance discovery would
        // reject it, so workload identity clients turn it off (as the
        // project's Go clients do, docs/workload-identity.md).
        opts.disableInstanceDiscovery = true;
      }
      if (who.kind === "client_id") opts.managedIdentityClientId = who.value;
      else if (who.kind === "resource_id" && MODE !== "workload-identity") opts.managedIdentityResourceId = who.value;
      else if (who.kind !== "system") {
        throw new Unsupported(`DefaultAzureCredential ${id.version} cannot select a managed identity by ${who.kind} in mode ${MODE} (options: managedIdentityClientId, managedIdentityResourceId)`);
      }
      return new identityMod.DefaultAzureCredential(opts);
    }
    case "workload-identity": {
      if (who.kind !== "system" && who.kind !== "client_id") {
        throw new Unsupported(`WorkloadIdentityCredential selects an identity only by client ID (AZURE_CLIENT_ID or clientId), not by ${who.kind}`);
      }
      // tenantId, clientId, tokenFilePath and the authority host come from
      // AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE and
      // AZURE_AUTHORITY_HOST; instance discovery off as above.
      const opts = { ...clientOptions, disableInstanceDiscovery: true };
      if (who.kind === "client_id") opts.clientId = who.value;
      return new identityMod.WorkloadIdentityCredential(opts);
    }
    case "msal-managed-identity": {
      const key = { client_id: "userAssignedClientId", object_id: "userAssignedObjectId", resource_id: "userAssignedResourceId" }[who.kind];
      const app = new msal.ManagedIdentityApplication({
        managedIdentityIdParams: key ? { [key]: who.value } : undefined,
        system: {
          loggerOptions: {
            // Errors only by default: MSAL warns "No client info in response" on every MI token.
            logLevel: { verbose: msal.LogLevel.Verbose, info: msal.LogLevel.Info }[process.env.AZURE_LOG_LEVEL] ?? msal.LogLevel.Error,
            piiLoggingEnabled: false,
            loggerCallback: (_level, message) => log(message),
          },
        },
      });
      return { msalApp: app, ...msalCredential(app) };
    }
    default:
      throw new Error(`unknown client ${JSON.stringify(KIND)}; want one of ${KINDS.join(", ")}`);
  }
}

let credential, buildError;
try {
  credential = build();
  log(`mode=${MODE} identity=${process.env.IDHARNESS_IDENTITY || "system"} credential built`);
} catch (err) {
  buildError = err;
  log(`cannot build the credential: ${err?.message}`);
}

// ---- requests ---------------------------------------------------------------

const secretClients = new Map(); // vaultUrl -> SecretClient, one per vault, on the one credential

function errorResult(rid, err) {
  const msg = String(err?.message ?? err).split(/\r?\n/).map((l) => l.trim()).filter(Boolean).join(" | ");
  return { type: "result", id: rid, ok: false, error: msg, errorType: err?.name || err?.constructor?.name || "Error" };
}

async function handle(req) {
  if (buildError) throw buildError;
  switch (req.type) {
    case "get_token": {
      if (!req.resource) throw new Error("get_token: missing resource");
      if (credential.msalApp) {
        // MSAL Node takes the resource itself; expiresOn is MSAL's Date.
        const r = await credential.msalApp.acquireToken({ resource: req.resource });
        const res = { type: "result", id: req.id, ok: true, token: r.accessToken };
        if (r.expiresOn) res.expiresOn = Math.floor(r.expiresOn.getTime() / 1000);
        return res;
      }
      const scope = req.resource.replace(/\/+$/, "") + "/.default";
      const t = await credential.getToken(scope);
      if (!t) throw new Error(`getToken(${scope}) returned null`);
      const res = { type: "result", id: req.id, ok: true, token: t.token };
      if (t.expiresOnTimestamp) res.expiresOn = Math.floor(t.expiresOnTimestamp / 1000);
      return res;
    }
    case "get_secret": {
      if (!req.vaultUrl || !req.name) throw new Error("get_secret: want vaultUrl and name");
      let sc = secretClients.get(req.vaultUrl);
      if (!sc) {
        // Challenge-resource verification stays on (the SDK default).
        sc = new SecretClient(req.vaultUrl, credential, clientOptions);
        secretClients.set(req.vaultUrl, sc);
      }
      const s = await sc.getSecret(req.name);
      return { type: "result", id: req.id, ok: true, value: s.value };
    }
    default:
      throw new Error(`unknown request type ${JSON.stringify(req.type)}`);
  }
}

const inflight = new Set();
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) {
    log(`ignoring a line that is not JSON: ${line.slice(0, 200)}`);
    return;
  }
  // Each request runs on its own; results are written as they finish.
  const p = handle(req)
    .then(emit, (err) => {
      log(`request ${req.id} failed: ${err?.stack ?? err}`);
      emit(errorResult(req.id, err));
    })
    .finally(() => inflight.delete(p));
  inflight.add(p);
});
rl.on("close", async () => {
  // End of input: answer what is still running, then exit 0 (keep-alive
  // sockets must not keep the process up).
  while (inflight.size) await Promise.allSettled([...inflight]);
  process.stdout.write("", () => process.exit(0));
});
