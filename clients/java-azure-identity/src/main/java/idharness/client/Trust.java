package idharness.client;

import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;

/**
 * Trusts IDHARNESS_CA_FILE (PEM) besides the JDK's own roots, with verification left on.
 *
 * <p>Java has no "extra CA file" variable, and the stacks here build TLS contexts in different ways:
 * azure-core's Netty client asks a default TrustManagerFactory (which reads javax.net.ssl.trustStore),
 * msal4j's own HTTP client uses HttpsURLConnection's default socket factory (SSLContext.getDefault()).
 * So the JDK roots plus the file go into one PKCS12 store, named as javax.net.ssl.trustStore and made
 * the default SSLContext.
 */
final class Trust {
    static void addCaFile(String pemFile) throws Exception {
        if (pemFile == null || pemFile.isBlank()) {
            return;
        }
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        int i = 0;
        // The JDK's roots (cacerts, or whatever javax.net.ssl.trustStore named).
        TrustManagerFactory jdk = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        jdk.init((KeyStore) null);
        for (TrustManager tm : jdk.getTrustManagers()) {
            if (tm instanceof X509TrustManager) {
                for (X509Certificate c : ((X509TrustManager) tm).getAcceptedIssuers()) {
                    ks.setCertificateEntry("jdk-" + i++, c);
                }
            }
        }
        int extra = 0;
        try (InputStream in = Files.newInputStream(Path.of(pemFile))) {
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                ks.setCertificateEntry("idharness-" + extra++, c);
            }
        }
        if (extra == 0) {
            throw new IllegalArgumentException(pemFile + " holds no PEM certificate");
        }

        char[] password = "idharness".toCharArray();
        Path store = Files.createTempFile("idharness-truststore", ".p12");
        store.toFile().deleteOnExit();
        try (OutputStream out = Files.newOutputStream(store)) {
            ks.store(out, password);
        }
        System.setProperty("javax.net.ssl.trustStore", store.toString());
        System.setProperty("javax.net.ssl.trustStoreType", "PKCS12");
        System.setProperty("javax.net.ssl.trustStorePassword", new String(password));

        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        SSLContext.setDefault(ctx);
        HttpsURLConnection.setDefaultSSLSocketFactory(ctx.getSocketFactory());
        System.err.println("idharness: trusting " + extra + " certificate(s) from " + pemFile + " besides the JDK's "
            + i + " roots");
    }

    private Trust() {
    }
}
