package io.flover.cluster;

import io.flover.coordinator.Replicas;
import io.flover.coordinator.ServingMetrics;
import io.flover.model.ModelConfig;
import io.flover.server.FloverServer;
import io.flover.worker.server.Membership;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

/**
 * The coordinator of a cluster: the client API over the replicas that {@link WorkerGroups} forms from the workers
 * in the cluster. It reads the model's config and tokenizer, never its weights. It is ready (gRPC health
 * SERVING) while at least one group serves.
 */
public final class Coordinator implements AutoCloseable {
    /**
     * @param modelDir the model directory, here and on the workers
     * @param host the client API's bind address
     * @param port the client API's port, 0 for any
     */
    public record Options(Path modelDir, String host, int port, Membership.Options cluster, WorkerGroups.Options groups,
                          ServingMetrics metrics, FloverServer.Security security, FloverServer.Streams streams) {
    }

    private final FloverServer server;
    private final Membership membership;
    private final WorkerGroups groups;

    private Coordinator(FloverServer server, Membership membership, WorkerGroups groups) {
        this.server = server;
        this.membership = membership;
        this.groups = groups;
    }

    public static Coordinator start(Options o) throws IOException {
        ModelConfig config = ModelConfig.load(o.modelDir());
        Replicas replicas = new Replicas(config, FloverServer.tokenizer(o.modelDir()), o.metrics());
        FloverServer server = FloverServer.serve(replicas, FloverServer.info(o.modelDir(), config),
                FloverServer.resolve(o.host(), o.port()), o.security(), o.streams(), () -> { });
        try {
            WorkerGroups groups = new WorkerGroups(config, o.groups(), replicas, n -> server.setServing(n > 0));
            Membership membership = Membership.join(o.cluster(), Map.of(Membership.ROLE, "coordinator"));
            groups.watch(membership);
            return new Coordinator(server, membership, groups);
        } catch (RuntimeException e) {
            server.close();
            throw e;
        }
    }

    public int port() {
        return server.port();
    }

    /** Ready: a group serves, and the coordinator is not draining. */
    public boolean serving() {
        return server.serving();
    }

    public Replicas replicas() {
        return server.replicas();
    }

    /** The client-facing server, which may serve the HTTP API beside gRPC. */
    public FloverServer server() {
        return server;
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /**
     * The graceful stop (SIGTERM): not ready, new requests refused, those in flight given {@code timeout} to finish
     * on their groups; then {@link #close}.
     */
    public void drainAndClose(Duration timeout) {
        server.drainAndClose(timeout);
        close();
    }

    /** Stops forming groups, leaves the cluster and stops serving; requests in flight end with UNAVAILABLE. */
    @Override
    public void close() {
        groups.close();
        membership.close();
        server.close();
    }
}
