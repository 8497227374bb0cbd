package io.flover.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ListModelsRequest;
import io.flover.worker.server.Tls;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.MetadataUtils;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client API's guards: bearer tokens (none, wrong, right; health open for probes), TLS (a plaintext client
 * against a TLS port is refused) and mutual TLS (a client without a certificate from the CA is refused).
 */
class SecurityTest {
    private static Path tls(String file) throws Exception {
        return Path.of(SecurityTest.class.getResource("/tls/" + file).toURI());
    }

    private static FloverServer start(FloverServer.Security security) throws Exception {
        return EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"), "127.0.0.1", 0, 1, 1,
                4 << 20, SchedulerConfig.defaults(new Policy.Fusion())), ServingMetrics.none(), security);
    }

    private static ManagedChannel channel(FloverServer server, ChannelCredentials credentials, String token) {
        var builder = Grpc.newChannelBuilder("localhost:" + server.port(), credentials);
        if (token != null) {
            Metadata headers = new Metadata();
            headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
            builder.intercept(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        return builder.build();
    }

    private static Status listModels(ManagedChannel channel) {
        try {
            GenerationGrpc.newBlockingStub(channel).listModels(ListModelsRequest.getDefaultInstance());
            return Status.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus();
        } finally {
            channel.shutdownNow();
        }
    }

    @Test
    void callsNeedAValidBearerTokenButProbesDoNot(@TempDir Path dir) throws Exception {
        Path tokens = Files.writeString(dir.resolve("tokens"), "# client tokens\nsecret-one\n\n  secret-two  \n");
        try (FloverServer server = start(new FloverServer.Security(Tls.NONE, BearerTokens.load(tokens)))) {
            ChannelCredentials plain = InsecureChannelCredentials.create();
            Status none = listModels(channel(server, plain, null));
            assertEquals(Status.Code.UNAUTHENTICATED, none.getCode());
            assertTrue(none.getDescription().contains("bearer token is required"), none.toString());
            Status wrong = listModels(channel(server, plain, "secret-three"));
            assertEquals(Status.Code.UNAUTHENTICATED, wrong.getCode());
            assertTrue(wrong.getDescription().contains("not valid"), wrong.toString());
            assertEquals(Status.Code.UNAUTHENTICATED, listModels(channel(server, plain, "secret")).getCode());
            assertEquals(Status.Code.OK, listModels(channel(server, plain, "secret-one")).getCode());
            assertEquals(Status.Code.OK, listModels(channel(server, plain, "secret-two")).getCode());
            ManagedChannel probe = channel(server, plain, null);
            assertEquals(HealthCheckResponse.ServingStatus.SERVING, HealthGrpc.newBlockingStub(probe)
                    .check(HealthCheckRequest.getDefaultInstance()).getStatus());
            probe.shutdownNow();
        }
    }

    @Test
    void anEmptyTokenFileIsRefusedNamingIt(@TempDir Path dir) throws Exception {
        Path tokens = Files.writeString(dir.resolve("tokens"), "# nothing yet\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BearerTokens.load(tokens));
        assertTrue(e.getMessage().contains(tokens.toString()), e.getMessage());
    }

    @Test
    void tlsRefusesPlaintextAndServesClientsThatTrustItsCa() throws Exception {
        try (FloverServer server = start(new FloverServer.Security(new Tls(tls("server.pem"), tls("server.key"), null), null))) {
            assertEquals(Status.Code.UNAVAILABLE, listModels(channel(server, InsecureChannelCredentials.create(), null))
                    .getCode());
            ChannelCredentials trusting = TlsChannelCredentials.newBuilder().trustManager(tls("ca.pem").toFile()).build();
            assertEquals(Status.Code.OK, listModels(channel(server, trusting, null)).getCode());
        }
    }

    @Test
    void mutualTlsRefusesClientsWithoutACertificateFromItsCa() throws Exception {
        try (FloverServer server = start(new FloverServer.Security(new Tls(tls("server.pem"), tls("server.key"),
                tls("ca.pem")), null))) {
            ChannelCredentials anonymous = TlsChannelCredentials.newBuilder().trustManager(tls("ca.pem").toFile()).build();
            assertEquals(Status.Code.UNAVAILABLE, listModels(channel(server, anonymous, null)).getCode());
            ChannelCredentials identified = TlsChannelCredentials.newBuilder().trustManager(tls("ca.pem").toFile())
                    .keyManager(tls("client.pem").toFile(), tls("client.key").toFile()).build();
            assertEquals(Status.Code.OK, listModels(channel(server, identified, null)).getCode());
        }
    }
}
