package io.flover.cli;

import io.flover.server.BearerTokens;
import io.flover.server.FloverServer;
import io.flover.worker.server.Tls;
import java.io.IOException;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** How a server secures its client API, shared by {@code serve} and {@code coordinator}. */
final class SecurityFlags {
    @Option(names = "--tls-cert", paramLabel = "PEM", description = "serve the client API over TLS with this certificate chain")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "PEM", description = "the PKCS#8 private key of --tls-cert")
    Path tlsKey;

    @Option(names = "--tls-client-ca", paramLabel = "PEM",
            description = "require client certificates signed by this CA (mutual TLS)")
    Path clientCa;

    @Option(names = "--auth-tokens", paramLabel = "FILE",
            description = "require a bearer token from this file (one per line, e.g. a mounted Kubernetes Secret)")
    Path tokens;

    FloverServer.Security security() throws IOException {
        return new FloverServer.Security(new Tls(tlsCert, tlsKey, clientCa),
                tokens == null ? null : BearerTokens.load(tokens));
    }
}
