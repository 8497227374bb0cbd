package io.flover.openai;

import io.flover.worker.server.Tls;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import org.eclipse.jetty.util.ssl.SslContextFactory;

/**
 * The gRPC API's TLS identity for the HTTP API: the same PEM certificate chain and PKCS#8 key, and, for mutual TLS,
 * the CA whose client certificates are required.
 */
final class Https {
    /** Guards only the in-memory key store that carries the key to Jetty; nothing is written anywhere. */
    private static final String IN_MEMORY = "flover";
    private static final String[] KEY_ALGORITHMS = {"RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS"};

    private Https() {
    }

    static SslContextFactory.Server contextFactory(Tls tls) throws IOException {
        try {
            KeyStore identity = KeyStore.getInstance("PKCS12");
            identity.load(null, null);
            identity.setKeyEntry("server", privateKey(tls.key()), IN_MEMORY.toCharArray(), certificates(tls.cert()));
            SslContextFactory.Server ssl = new SslContextFactory.Server();
            ssl.setKeyStore(identity);
            ssl.setKeyStorePassword(IN_MEMORY);
            if (tls.ca() != null) {
                KeyStore trust = KeyStore.getInstance("PKCS12");
                trust.load(null, null);
                Certificate[] cas = certificates(tls.ca());
                for (int i = 0; i < cas.length; i++) {
                    trust.setCertificateEntry("ca-" + i, cas[i]);
                }
                ssl.setTrustStore(trust);
                ssl.setNeedClientAuth(true);
            }
            return ssl;
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot serve HTTPS with " + tls.cert() + " and " + tls.key() + ": " + e.getMessage(), e);
        }
    }

    private static Certificate[] certificates(Path pem) throws IOException, GeneralSecurityException {
        try (InputStream in = Files.newInputStream(pem)) {
            Certificate[] chain = CertificateFactory.getInstance("X.509").generateCertificates(in)
                    .toArray(Certificate[]::new);
            if (chain.length == 0) {
                throw new IOException(pem + " holds no PEM certificate");
            }
            return chain;
        }
    }

    /** A PEM {@code PRIVATE KEY} (PKCS#8, unencrypted), as gRPC reads it. */
    private static PrivateKey privateKey(Path pem) throws IOException, GeneralSecurityException {
        String text = Files.readString(pem);
        String begin = "-----BEGIN PRIVATE KEY-----";
        int from = text.indexOf(begin);
        int to = text.indexOf("-----END PRIVATE KEY-----");
        if (from < 0 || to < from) {
            throw new IOException(pem + " is not a PEM PKCS#8 key (BEGIN PRIVATE KEY); convert it with "
                    + "openssl pkcs8 -topk8 -nocrypt");
        }
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getMimeDecoder()
                .decode(text.substring(from + begin.length(), to)));
        GeneralSecurityException last = null;
        for (String algorithm : KEY_ALGORITHMS) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(spec);
            } catch (GeneralSecurityException e) {
                last = e;
            }
        }
        throw new IOException(pem + " holds a key of none of the algorithms " + String.join(", ", KEY_ALGORITHMS), last);
    }
}
