package io.flover.worker.server;

import io.flover.collectives.TcpTransport;
import io.flover.kernels.Device;
import io.flover.worker.KvMemory;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A worker process: the {@code flover.v1.Worker} service with a health service, a listener for its group's
 * collectives, and its membership in the cluster, where it announces both addresses so a coordinator can put it in
 * a group.
 */
public final class WorkerNode implements AutoCloseable {
    /** Steps carry a batch's token ids and block tables: far below this even for long prompts. */
    private static final int MAX_STEP_BYTES = 64 << 20;

    /**
     * @param host the address to bind
     * @param advertiseHost the address others reach this worker at
     * @param port the worker service's port, 0 for any
     * @param collectivePort the collectives' port, 0 for any
     * @param kvMemory the KV cache of each shard it loads
     * @param metrics where the worker's meters go
     * @param tls the worker service's certificate and the CA of the coordinators it accepts (mutual TLS)
     */
    public record Options(String host, String advertiseHost, int port, int collectivePort, Device device, int threads,
                          KvMemory kvMemory, Membership.Options cluster, MeterRegistry metrics, Tls tls) {
    }

    private final TcpTransport transport;
    private final WorkerService service;
    private final Server server;
    private final Membership membership;

    private WorkerNode(TcpTransport transport, WorkerService service, Server server, Membership membership) {
        this.transport = transport;
        this.service = service;
        this.server = server;
        this.membership = membership;
    }

    /** Binds both ports, then joins the cluster: from then on a coordinator may load a shard here. */
    public static WorkerNode start(Options o) throws IOException {
        TcpTransport transport = null;
        Server server = null;
        try {
            transport = TcpTransport.listen(new InetSocketAddress(o.host(), o.collectivePort()));
            WorkerService service = new WorkerService(() -> o.device().open(o.threads()), o.kvMemory(),
                    transport::join, o.metrics());
            HealthStatusManager health = new HealthStatusManager();
            server = NettyServerBuilder.forAddress(new InetSocketAddress(o.host(), o.port()), o.tls().server())
                    .addService(MalformedRequests.guard(service))
                    .addService(health.getHealthService())
                    .maxInboundMessageSize(MAX_STEP_BYTES)
                    .build()
                    .start();
            health.setStatus("", ServingStatus.SERVING);
            Membership membership = Membership.join(o.cluster(), Map.of(
                    Membership.ROLE, "worker",
                    Membership.WORKER_ADDRESS, o.advertiseHost() + ":" + server.getPort(),
                    Membership.COLLECTIVE_ADDRESS, o.advertiseHost() + ":" + transport.address().getPort(),
                    Membership.DEVICE, o.device().toString()));
            return new WorkerNode(transport, service, server, membership);
        } catch (IOException | RuntimeException e) {
            if (server != null) {
                server.shutdownNow();
            }
            if (transport != null) {
                transport.close();
            }
            throw e;
        }
    }

    public int port() {
        return server.getPort();
    }

    public int collectivePort() {
        return transport.address().getPort();
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /**
     * The graceful stop (SIGTERM): leaves the cluster, so the coordinator retires this worker's group once the step
     * in flight has finished and resumes its requests elsewhere; waits (up to {@code timeout}) for the coordinator
     * to end the step stream; then stops.
     */
    public void drainAndClose(Duration timeout) {
        membership.close();
        try {
            service.awaitDropped(timeout);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        close();
    }

    @Override
    public void close() {
        membership.close();
        server.shutdownNow();
        service.close();
        transport.close();
        try {
            server.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
