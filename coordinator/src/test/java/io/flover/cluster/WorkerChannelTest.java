package io.flover.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.flover.worker.server.Tls;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The coordinator's channels to workers over mutual TLS, as in Kubernetes: a worker is reached at its pod IP, and
 * its certificate (one for all workers, from a Secret) names a DNS name, never that IP.
 */
class WorkerChannelTest {
    private static Path tls(String file) throws Exception {
        return Path.of(WorkerChannelTest.class.getResource("/tls/" + file).toURI());
    }

    @Test
    void aWorkerCertificateForANameServesAtAnAddressWhenTheCoordinatorChecksThatName() throws Exception {
        Tls worker = new Tls(tls("named.pem"), tls("named.key"), tls("ca.pem"));
        Tls coordinator = new Tls(tls("client.pem"), tls("client.key"), tls("ca.pem"));
        HealthStatusManager health = new HealthStatusManager();
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0), worker.server())
                .addService(health.getHealthService()).build().start();
        try {
            String address = "127.0.0.1:" + server.getPort();
            assertEquals(Status.Code.OK, check(WorkerGroups.channel(address, coordinator, "flover-worker")));
            // The certificate does not name 127.0.0.1, nor another name.
            assertEquals(Status.Code.UNAVAILABLE, check(WorkerGroups.channel(address, coordinator, null)));
            assertEquals(Status.Code.UNAVAILABLE, check(WorkerGroups.channel(address, coordinator, "flover-other")));
            // Mutual TLS still holds: the worker refuses a coordinator without a certificate from its CA.
            Tls anonymous = new Tls(null, null, tls("ca.pem"));
            assertEquals(Status.Code.UNAVAILABLE, check(WorkerGroups.channel(address, anonymous, "flover-worker")));
        } finally {
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static Status.Code check(ManagedChannel channel) throws InterruptedException {
        try {
            HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance());
            return Status.Code.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
