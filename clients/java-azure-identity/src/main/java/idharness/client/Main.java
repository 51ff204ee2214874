package idharness.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The idharness client program for Java (clients/PROTOCOL.md): reads JSON-lines requests on
 * stdin, answers each by id on stdout, runs them concurrently on one credential built at start.
 *
 * <p>Usage: {@code java -jar client.jar managed-identity|default|workload-identity|msal-managed-identity}
 */
public final class Main {
    /** The protocol's stream: the real stdout. System.out is pointed at stderr so that nothing else writes here. */
    private static PrintStream protocolOut;
    static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        protocolOut = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        System.setOut(System.err);
        configureLogging();
        // Before any SDK class runs: the extra CAs must be in the JVM's trust store when
        // Netty, msal4j and HttpsURLConnection build their TLS contexts.
        String caError = null;
        try {
            Trust.addCaFile(System.getenv("IDHARNESS_CA_FILE"));
        } catch (Exception e) {
            caError = "IDHARNESS_CA_FILE: " + e;
            System.err.println("idharness: " + caError);
        }

        String kind = args.length > 0 ? args[0] : "";
        emit(hello());

        Clients.Client client;
        try {
            if (caError != null) {
                throw new IllegalStateException(caError);
            }
            client = Clients.build(kind, System.getenv("IDHARNESS_MODE"), System.getenv("IDHARNESS_IDENTITY"));
            System.err.println("idharness: " + kind + " mode=" + System.getenv("IDHARNESS_MODE") + " identity="
                + System.getenv("IDHARNESS_IDENTITY") + ": credential built");
        } catch (Throwable t) {
            // The protocol: still answer every request, with the reason.
            System.err.println("idharness: cannot build the " + kind + " client: " + t);
            client = new Clients.Failed(t);
        }

        // Requests may block for minutes (retries, hangs): one thread each, so none waits for another.
        AtomicInteger n = new AtomicInteger();
        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "idharness-request-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        final Clients.Client c = client;
        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isBlank()) {
                    continue;
                }
                final String l = line;
                pool.execute(() -> emit(handle(c, l)));
            }
        }
        // End of input: answer what is still running, then leave (Netty's threads would keep the JVM up).
        pool.shutdown();
        pool.awaitTermination(Long.MAX_VALUE, TimeUnit.DAYS);
        protocolOut.flush();
        System.exit(0);
    }

    private static ObjectNode handle(Clients.Client c, String line) {
        ObjectNode out = JSON.createObjectNode();
        out.put("type", "result");
        JsonNode req;
        try {
            req = JSON.readTree(line);
        } catch (Exception e) {
            System.err.println("idharness: unreadable request line: " + line);
            out.putNull("id");
            return fail(out, e);
        }
        out.set("id", req.get("id"));
        String type = req.path("type").asText("");
        try {
            switch (type) {
                case "get_token": {
                    Clients.Token tok = c.getToken(req.path("resource").asText(""));
                    out.put("ok", true);
                    out.put("token", tok.token);
                    if (tok.expiresOn != null) {
                        out.put("expiresOn", tok.expiresOn);
                    }
                    return out;
                }
                case "get_secret":
                    out.put("ok", true);
                    out.put("value", c.getSecret(req.path("vaultUrl").asText(""), req.path("name").asText("")));
                    return out;
                default:
                    throw new UnsupportedOperationException("unknown request type \"" + type + "\"");
            }
        } catch (Throwable t) {
            return fail(out, t);
        }
    }

    /** ok:false with the SDK's own messages, the exception and its causes joined by " | ". */
    static ObjectNode fail(ObjectNode out, Throwable t) {
        Throwable top = Clients.unwrap(t);
        StringBuilder msg = new StringBuilder();
        for (Throwable e = top; e != null; e = e.getCause() == e ? null : e.getCause()) {
            String m = e.getMessage() == null ? e.getClass().getName() : e.getMessage().trim();
            if (msg.indexOf(m) >= 0) {
                continue; // a cause whose message its wrapper already carries
            }
            if (msg.length() > 0) {
                msg.append(" | ");
            }
            msg.append(m.replace("\r", "").replace("\n", " | "));
        }
        out.put("ok", false);
        out.put("error", msg.toString());
        out.put("errorType", top.getClass().getSimpleName());
        return out;
    }

    static void emit(ObjectNode line) {
        String s;
        try {
            s = JSON.writeValueAsString(line);
        } catch (Exception e) {
            s = "{\"type\":\"result\",\"ok\":false,\"error\":\"cannot encode result\"}";
        }
        synchronized (protocolOut) {
            protocolOut.print(s + "\n");
            protocolOut.flush();
        }
    }

    private static ObjectNode hello() {
        ObjectNode h = JSON.createObjectNode();
        h.put("type", "hello");
        h.put("protocol", 1);
        h.put("language", "java");
        h.put("runtime", "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.runtime.name")
            + " " + System.getProperty("java.runtime.version") + ")");
        ObjectNode sdks = h.putObject("sdks");
        for (String ga : new String[] {"com.azure:azure-identity", "com.microsoft.azure:msal4j",
            "com.azure:azure-security-keyvault-secrets", "com.azure:azure-core"}) {
            sdks.put(ga, loadedVersion(ga));
        }
        return h;
    }

    /** The version of the jar on the class path, from the pom.properties Maven put in it (shade keeps them). */
    private static String loadedVersion(String groupArtifact) {
        String[] p = groupArtifact.split(":");
        String path = "META-INF/maven/" + p[0] + "/" + p[1] + "/pom.properties";
        try (InputStream in = Main.class.getClassLoader().getResourceAsStream(path)) {
            if (in != null) {
                Properties props = new Properties();
                props.load(in);
                return props.getProperty("version", "unknown");
            }
        } catch (Exception e) {
            // fall through
        }
        return "unknown";
    }

    /**
     * slf4j-simple: stderr, and INFO by default (AZURE_LOG_LEVEL may say otherwise) so that the
     * harness's log of the client shows what the SDK did. Must run before the first logger exists.
     */
    private static void configureLogging() {
        String level = System.getenv("AZURE_LOG_LEVEL");
        if (level == null || level.isBlank()) {
            level = "info";
        } else if (level.equalsIgnoreCase("verbose")) {
            level = "debug";
        } else if (level.equalsIgnoreCase("warning")) {
            level = "warn";
        }
        setIfUnset("org.slf4j.simpleLogger.logFile", "System.err");
        setIfUnset("org.slf4j.simpleLogger.defaultLogLevel", level.toLowerCase());
        setIfUnset("org.slf4j.simpleLogger.showDateTime", "true");
        setIfUnset("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");
        // Netty and Reactor are chatty at DEBUG and tell nothing about identity.
        setIfUnset("org.slf4j.simpleLogger.log.io.netty", "warn");
        setIfUnset("org.slf4j.simpleLogger.log.reactor", "warn");
    }

    static void setIfUnset(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private Main() {
    }
}
