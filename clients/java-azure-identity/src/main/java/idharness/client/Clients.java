package idharness.client;

import com.azure.core.credential.AccessToken;
import com.azure.core.credential.TokenCredential;
import com.azure.core.credential.TokenRequestContext;
import com.azure.identity.DefaultAzureCredentialBuilder;
import com.azure.identity.ManagedIdentityCredentialBuilder;
import com.azure.identity.WorkloadIdentityCredentialBuilder;
import com.azure.security.keyvault.secrets.SecretClient;
import com.azure.security.keyvault.secrets.SecretClientBuilder;
import com.microsoft.aad.msal4j.IAuthenticationResult;
import com.microsoft.aad.msal4j.ManagedIdentityApplication;
import com.microsoft.aad.msal4j.ManagedIdentityId;
import com.microsoft.aad.msal4j.ManagedIdentityParameters;
import reactor.core.publisher.Mono;

import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;

/** The four clients, each one credential (or MSAL application) built once and shared by every request. */
final class Clients {
    /** A token as the SDK reported it; expiresOn is Unix seconds from the SDK's result object, or null. */
    static final class Token {
        final String token;
        final Long expiresOn;

        Token(String token, Long expiresOn) {
            this.token = token;
            this.expiresOn = expiresOn;
        }
    }

    interface Client {
        Token getToken(String resource) throws Exception;

        String getSecret(String vaultUrl, String name) throws Exception;
    }

    /** IDHARNESS_IDENTITY: "system" or "" (the default identity), client_id=, object_id=, resource_id=. */
    static final class Identity {
        final String kind;
        final String value;

        Identity(String s) {
            s = s == null ? "" : s.trim();
            if (s.isEmpty() || s.equals("system")) {
                kind = "system";
                value = null;
                return;
            }
            int eq = s.indexOf('=');
            String k = eq < 0 ? s : s.substring(0, eq);
            value = eq < 0 ? "" : s.substring(eq + 1);
            if (k.equals("msi_res_id") || k.equals("mi_res_id")) {
                k = "resource_id"; // the names IMDS and App Service use, as the Go harness accepts them
            }
            if (value.isEmpty() || !(k.equals("client_id") || k.equals("object_id") || k.equals("resource_id"))) {
                throw new IllegalArgumentException("IDHARNESS_IDENTITY=" + s
                    + ": want system, client_id=ID, object_id=ID or resource_id=ARM-ID");
            }
            kind = k;
        }
    }

    /** Thrown at build time when the SDK cannot express the selector; every request then answers with it. */
    static final class UnsupportedSelectorException extends RuntimeException {
        UnsupportedSelectorException(String m) {
            super(m);
        }
    }

    static Client build(String kind, String mode, String identity) {
        Identity id = new Identity(identity);
        mode = mode == null || mode.isEmpty() ? "imds" : mode;
        switch (kind) {
            case "managed-identity":
                return new Azure(managedIdentity(id));
            case "default":
                return new Azure(defaultCredential(id, mode));
            case "workload-identity":
                return new Azure(workloadIdentity(id));
            case "msal-managed-identity":
                return new Msal(id);
            default:
                throw new IllegalArgumentException("unknown client \"" + kind
                    + "\": want managed-identity, default, workload-identity or msal-managed-identity");
        }
    }

    /** azure-identity 1.18 takes one of clientId, objectId, resourceId (IMDS: client_id, object_id, msi_res_id). */
    private static TokenCredential managedIdentity(Identity id) {
        ManagedIdentityCredentialBuilder b = new ManagedIdentityCredentialBuilder();
        switch (id.kind) {
            case "client_id":
                b.clientId(id.value);
                break;
            case "object_id":
                b.objectId(id.value);
                break;
            case "resource_id":
                b.resourceId(id.value);
                break;
            default:
                break;
        }
        return b.build();
    }

    private static TokenCredential defaultCredential(Identity id, String mode) {
        // Only the production chain (Environment, WorkloadIdentity, ManagedIdentity): never az,
        // IntelliJ, VS Code, PowerShell or azd. azure-core's Configuration reads system properties
        // before the environment, so set it only when the variable is unset: a value the harness
        // sets itself wins.
        if (System.getenv("AZURE_TOKEN_CREDENTIALS") == null) {
            Main.setIfUnset("AZURE_TOKEN_CREDENTIALS", "prod");
        }
        DefaultAzureCredentialBuilder b = new DefaultAzureCredentialBuilder();
        if (mode.equals("workload-identity")) {
            // The harness's fake authority is no host login.microsoftonline.com vouches for; instance
            // discovery would send the request there (out of the cluster) and fail, as the project's
            // Go and Node clients do not (docs/workload-identity.md).
            b.disableInstanceDiscovery();
        }
        switch (id.kind) {
            case "client_id":
                b.managedIdentityClientId(id.value); // also the workload identity client ID when none is set
                break;
            case "resource_id":
                if (mode.equals("workload-identity")) {
                    throw new UnsupportedSelectorException("DefaultAzureCredential cannot select a workload identity by "
                        + "resource ID (WorkloadIdentityCredential takes a client ID only)");
                }
                b.managedIdentityResourceId(id.value);
                break;
            case "object_id":
                throw new UnsupportedSelectorException("DefaultAzureCredentialBuilder (azure-identity) cannot select a "
                    + "managed identity by object ID: it offers managedIdentityClientId and managedIdentityResourceId only");
            default:
                break;
        }
        return b.build();
    }

    /** Tenant, client ID, token file and authority host come from AZURE_* as the webhook sets them. */
    private static TokenCredential workloadIdentity(Identity id) {
        WorkloadIdentityCredentialBuilder b = new WorkloadIdentityCredentialBuilder().disableInstanceDiscovery();
        switch (id.kind) {
            case "client_id":
                b.clientId(id.value);
                break;
            case "system":
                break; // AZURE_CLIENT_ID
            default:
                throw new UnsupportedSelectorException("WorkloadIdentityCredential selects an identity by client ID only "
                    + "(clientId or AZURE_CLIENT_ID), not by " + id.kind);
        }
        return b.build();
    }

    /** A credential of azure-identity: tokens from it, secrets through a SecretClient on it. */
    static class Azure implements Client {
        final TokenCredential credential;
        private final Map<String, SecretClient> secretClients = new ConcurrentHashMap<>();

        Azure(TokenCredential credential) {
            this.credential = credential;
        }

        @Override
        public Token getToken(String resource) throws Exception {
            AccessToken t = credential.getTokenSync(new TokenRequestContext().addScopes(scope(resource)));
            return new Token(t.getToken(), t.getExpiresAt() == null ? null : t.getExpiresAt().toEpochSecond());
        }

        @Override
        public String getSecret(String vaultUrl, String name) {
            // One SecretClient per vault, as an application keeps one: its bearer policy caches the token
            // and the challenge. Challenge resource verification stays on (the default).
            SecretClient c = secretClients.computeIfAbsent(vaultUrl,
                u -> new SecretClientBuilder().vaultUrl(u).credential(credential).buildClient());
            return c.getSecret(name).getValue();
        }
    }

    /**
     * msal4j's ManagedIdentityApplication, asked by resource. Secrets go through a SecretClient whose
     * credential is this application (a three-line adapter, as an application using MSAL would write).
     */
    static final class Msal extends Azure {
        final ManagedIdentityApplication app;

        Msal(Identity id) {
            this(app(id));
        }

        private Msal(ManagedIdentityApplication app) {
            super(request -> Mono.fromCallable(() -> {
                IAuthenticationResult r = acquire(app, resource(request.getScopes().get(0)));
                return new AccessToken(r.accessToken(), Instant.ofEpochMilli(r.expiresOnDate().getTime())
                    .atOffset(ZoneOffset.UTC));
            }));
            this.app = app;
        }

        private static ManagedIdentityApplication app(Identity id) {
            ManagedIdentityId mi;
            switch (id.kind) {
                case "client_id":
                    mi = ManagedIdentityId.userAssignedClientId(id.value);
                    break;
                case "object_id":
                    mi = ManagedIdentityId.userAssignedObjectId(id.value);
                    break;
                case "resource_id":
                    mi = ManagedIdentityId.userAssignedResourceId(id.value);
                    break;
                default:
                    mi = ManagedIdentityId.systemAssigned();
            }
            return ManagedIdentityApplication.builder(mi).build();
        }

        static IAuthenticationResult acquire(ManagedIdentityApplication app, String resource) throws Exception {
            return app.acquireTokenForManagedIdentity(ManagedIdentityParameters.builder(resource).build()).get();
        }

        @Override
        public Token getToken(String resource) throws Exception {
            IAuthenticationResult r = acquire(app, resource);
            // expiresOnDate(): when MSAL believes the token expires (from expires_on / expires_in).
            return new Token(r.accessToken(), r.expiresOnDate() == null ? null : r.expiresOnDate().getTime() / 1000);
        }
    }

    /** The credential could not be built: every request gets the reason. */
    static final class Failed implements Client {
        private final Throwable cause;

        Failed(Throwable cause) {
            this.cause = cause;
        }

        @Override
        public Token getToken(String resource) throws Exception {
            throw rethrow();
        }

        @Override
        public String getSecret(String vaultUrl, String name) throws Exception {
            throw rethrow();
        }

        private Exception rethrow() {
            return cause instanceof Exception ? (Exception) cause : new RuntimeException(cause);
        }
    }

    static String scope(String resource) {
        String r = resource;
        while (r.endsWith("/")) {
            r = r.substring(0, r.length() - 1);
        }
        return r + "/.default";
    }

    static String resource(String scope) {
        return scope.endsWith("/.default") ? scope.substring(0, scope.length() - "/.default".length()) : scope;
    }

    /**
     * The SDK's exception, not the wrappers around it: futures' (ExecutionException, CompletionException)
     * and plain RuntimeExceptions (WorkloadIdentityCredential rethrows MSAL's errors in two of them).
     */
    static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof CompletionException
            || t.getClass() == RuntimeException.class) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    private Clients() {
    }
}
