package io.flover.cli;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** How a client reaches a secured server, shared by {@code generate --server} and {@code bench serve}. */
final class ClientFlags {
    @Option(names = "--tls-ca", paramLabel = "PEM", description = "connect over TLS, trusting servers signed by this CA")
    Path tlsCa;

    @Option(names = "--tls-cert", paramLabel = "PEM", description = "with --tls-ca: present this client certificate (mutual TLS)")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "PEM", description = "the PKCS#8 private key of --tls-cert")
    Path tlsKey;

    @Option(names = "--token-file", paramLabel = "FILE", description = "send the bearer token in this file")
    Path tokenFile;

    /** A channel to {@code target} with these credentials; the token, if any, goes with every call. */
    ManagedChannelBuilder<?> channel(String target) throws IOException {
        Flags.require((tlsCert == null) == (tlsKey == null), "--tls-cert and --tls-key go together");
        Flags.require(tlsCert == null || tlsCa != null, "--tls-cert needs --tls-ca");
        ChannelCredentials credentials = InsecureChannelCredentials.create();
        if (tlsCa != null) {
            TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder().trustManager(tlsCa.toFile());
            if (tlsCert != null) {
                tls.keyManager(tlsCert.toFile(), tlsKey.toFile());
            }
            credentials = tls.build();
        }
        var builder = Grpc.newChannelBuilder(target, credentials);
        if (tokenFile != null) {
            String token = Files.readString(tokenFile).strip();
            Flags.require(!token.isEmpty(), "--token-file " + tokenFile + " is empty");
            Metadata headers = new Metadata();
            headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
            builder.intercept(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        return builder;
    }
}
