package io.flover.server;

import io.flover.coordinator.EmbeddedEngine;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ModelInfo;
import io.flover.worker.LoadedModel;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A Flover server in one process: the model, an embedded scheduler over it, and a gRPC server with the client
 * API, the standard health service and server reflection (so grpcurl and load-balancer probes work as usual).
 */
public final class FloverServer implements AutoCloseable {
    /** The largest request accepted; prompts and stop lists are far smaller. */
    public static final int MAX_REQUEST_BYTES = 4 << 20;
    private static final long SHUTDOWN_GRACE_SECONDS = 5;

    /**
     * What to serve and how.
     *
     * @param host the address to bind, e.g. 0.0.0.0 or 127.0.0.1
     * @param port 0 binds a free port; {@link #port()} tells which
     */
    public record Options(Path modelDir, String host, int port, int threads, long kvMemoryBytes,
                          SchedulerConfig scheduler) {
    }

    private final CpuKernels kernels;
    private final LoadedModel model;
    private final Scheduler scheduler;
    private final HealthStatusManager health;
    private final Server server;
    private final AtomicBoolean closed = new AtomicBoolean();

    private FloverServer(CpuKernels kernels, LoadedModel model, Scheduler scheduler, HealthStatusManager health,
                         Server server) {
        this.kernels = kernels;
        this.model = model;
        this.scheduler = scheduler;
        this.health = health;
        this.server = server;
    }

    /** Loads the model, starts the scheduler and binds the server; the health service says SERVING from then on. */
    public static FloverServer start(Options o) throws IOException {
        InetSocketAddress address = new InetSocketAddress(o.host(), o.port());
        if (address.isUnresolved()) {
            throw new UnknownHostException("cannot listen on " + o.host() + ": unknown host");
        }
        CpuKernels kernels = new CpuKernels(o.threads());
        LoadedModel model = null;
        Scheduler scheduler = null;
        try {
            model = LoadedModel.open(o.modelDir(), kernels);
            Tokenizer tokenizer = Files.isRegularFile(o.modelDir().resolve("tokenizer.json"))
                    ? Tokenizer.load(o.modelDir()) : null;
            int blocks = EmbeddedEngine.blocksFor(model.config(), o.kvMemoryBytes());
            scheduler = EmbeddedEngine.start(model.lm(), tokenizer, blocks, o.scheduler());
            HealthStatusManager health = new HealthStatusManager();
            Server server = NettyServerBuilder.forAddress(address)
                    .addService(new GenerationService(scheduler, info(model)))
                    .addService(health.getHealthService())
                    .addService(ProtoReflectionServiceV1.newInstance())
                    .maxInboundMessageSize(MAX_REQUEST_BYTES)
                    .build();
            return new FloverServer(kernels, model, scheduler, health, server).bind(address);
        } catch (IOException | RuntimeException e) {
            if (scheduler != null) {
                scheduler.close();
            }
            if (model != null) {
                model.close();
            }
            kernels.close();
            throw e;
        }
    }

    private static ModelInfo info(LoadedModel model) {
        ModelConfig c = model.config();
        return ModelInfo.newBuilder()
                .setName(model.dir().toAbsolutePath().normalize().getFileName().toString())
                .setArchitecture(c.architecture().hfName())
                .setContextLength(c.maxPositions())
                .setDtype(model.weightsDtype().name())
                .setVocabSize(c.vocabSize())
                .build();
    }

    private FloverServer bind(InetSocketAddress address) throws IOException {
        try {
            server.start();
        } catch (IOException e) {
            // gRPC's message names the address but not why (e.g. "Address already in use"), which is in the cause
            String why = e.getCause() != null && e.getCause().getMessage() != null ? e.getCause().getMessage() : e.toString();
            throw new IOException("cannot listen on " + address.getHostString() + ":" + address.getPort() + ": " + why, e);
        }
        health.setStatus("", ServingStatus.SERVING);
        health.setStatus(GenerationGrpc.SERVICE_NAME, ServingStatus.SERVING);
        return this;
    }

    /** The bound port (the chosen one when started with port 0). */
    public int port() {
        return server.getPort();
    }

    public LoadedModel model() {
        return model;
    }

    public Scheduler scheduler() {
        return scheduler;
    }

    /** Blocks until the server has shut down. */
    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /**
     * Stops accepting calls, ends the requests in flight (they finish with reason ERROR), waits a little for
     * their streams to close and releases the model. Idempotent, so a shutdown hook and its owner may both call it.
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        health.enterTerminalState();
        server.shutdown();
        scheduler.close();
        try {
            if (!server.awaitTermination(SHUTDOWN_GRACE_SECONDS, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        } finally {
            model.close();
            kernels.close();
        }
    }
}
