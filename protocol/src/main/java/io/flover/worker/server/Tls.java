package io.flover.worker.server;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ServerCredentials;
import io.grpc.TlsChannelCredentials;
import io.grpc.TlsServerCredentials;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A TLS identity and trust as PEM files: a certificate chain with its PKCS#8 key, and a CA. As a server's: serve
 * with the certificate and, given a CA, require client certificates signed by it (mutual TLS). As a client's:
 * trust servers signed by the CA and, given a certificate, present it. {@link #NONE} is plaintext.
 */
public record Tls(Path cert, Path key, Path ca) {
    public static final Tls NONE = new Tls(null, null, null);

    public Tls {
        if ((cert == null) != (key == null)) {
            throw new IllegalArgumentException("a TLS certificate and its key go together");
        }
    }

    public ServerCredentials server() throws IOException {
        if (cert == null) {
            if (ca != null) {
                throw new IllegalArgumentException("requiring client certificates needs a server certificate and key");
            }
            return InsecureServerCredentials.create();
        }
        TlsServerCredentials.Builder tls = TlsServerCredentials.newBuilder().keyManager(cert.toFile(), key.toFile());
        if (ca != null) {
            tls.trustManager(ca.toFile()).clientAuth(TlsServerCredentials.ClientAuth.REQUIRE);
        }
        return tls.build();
    }

    public ChannelCredentials client() throws IOException {
        if (ca == null) {
            if (cert != null) {
                throw new IllegalArgumentException("a client certificate needs the CA of the server to trust");
            }
            return InsecureChannelCredentials.create();
        }
        TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder().trustManager(ca.toFile());
        if (cert != null) {
            tls.keyManager(cert.toFile(), key.toFile());
        }
        return tls.build();
    }
}
