package io.flover.server;

import io.flover.coordinator.Replicas;
import io.flover.coordinator.Scheduler;
import io.flover.model.Checkpoint;
import io.flover.model.DType;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.openai.ChatTemplate;
import io.flover.openai.OpenAiServer;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ModelInfo;
import io.flover.worker.server.MalformedRequests;
import io.flover.worker.server.Tls;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A Flover server: the client API over a model's replicas, with the standard health service and server
 * reflection (so grpcurl and load-balancer probes work as usual). In one process the replicas are one embedded group
 * ({@code EmbeddedServer}); a cluster coordinator feeds them groups of remote workers.
 */
public final class FloverServer implements AutoCloseable {
    /** The largest request accepted; prompts and stop lists are far smaller. */
    public static final int MAX_REQUEST_BYTES = 4 << 20;
    private static final long SHUTDOWN_GRACE_SECONDS = 5;
    private static final Logger LOG = Logger.getLogger(FloverServer.class.getName());

    /**
     * Who may call the client API, and over what.
     *
     * @param tls the server's certificate and, for mutual TLS, the CA of its clients; {@link Tls#NONE} for plaintext
     * @param tokens require one of these bearer tokens; null to require none
     */
    public record Security(Tls tls, BearerTokens tokens) {
        public static final Security NONE = new Security(Tls.NONE, null);
    }

    /**
     * How much a client stream may hold back, and for how long.
     *
     * @param buffered messages a stream holds for a client that is not reading (later ones merge into the last)
     * @param stallTimeout how long a client may read nothing with its stream's buffer full before its request is
     *     cancelled and the stream ends with RESOURCE_EXHAUSTED
     */
    public record Streams(int buffered, Duration stallTimeout) {
        public static final Streams DEFAULT = new Streams(64, Duration.ofSeconds(30));

        public Streams {
            if (buffered < 1 || !stallTimeout.isPositive()) {
                throw new IllegalArgumentException("a stream needs room for a message and a positive stall timeout");
            }
        }
    }

    private final Replicas replicas;
    private final ModelInfo model;
    private final Security security;
    private final Streams streams;
    private final HealthStatusManager health;
    private final Server server;
    private final AutoCloseable resources;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile boolean serving;
    private volatile OpenAiServer http;

    private FloverServer(Replicas replicas, ModelInfo model, Security security, Streams streams,
                         HealthStatusManager health, Server server, AutoCloseable resources) {
        this.replicas = replicas;
        this.model = model;
        this.security = security;
        this.streams = streams;
        this.health = health;
        this.server = server;
        this.resources = resources;
    }

    /**
     * Binds a server over {@code replicas}; it says NOT_SERVING until {@link #setServing} says otherwise.
     * {@code resources} are closed after the server stops.
     */
    public static FloverServer serve(Replicas replicas, ModelInfo model, InetSocketAddress address, Security security,
                                     Streams streams, AutoCloseable resources) throws IOException {
        HealthStatusManager health = new HealthStatusManager();
        NettyServerBuilder builder = NettyServerBuilder.forAddress(address, security.tls().server())
                .addService(MalformedRequests.guard(new GenerationService(replicas, model, streams)))
                .addService(health.getHealthService())
                .addService(ProtoReflectionServiceV1.newInstance())
                .maxInboundMessageSize(MAX_REQUEST_BYTES);
        if (security.tokens() != null) {
            builder.intercept(security.tokens());
        }
        Server server = builder.build();
        FloverServer s = new FloverServer(replicas, model, security, streams, health, server, resources);
        health.setStatus("", ServingStatus.SERVING);
        s.setServing(false);
        try {
            server.start();
        } catch (IOException e) {
            // gRPC's message names the address but not why (e.g. "Address already in use"), which is in the cause
            String why = e.getCause() != null && e.getCause().getMessage() != null ? e.getCause().getMessage() : e.toString();
            throw new IOException("cannot listen on " + address.getHostString() + ":" + address.getPort() + ": " + why, e);
        }
        return s;
    }

    /**
     * Serves the OpenAI-compatible HTTP API as well, at {@code address}, over the same replicas, TLS (HTTPS with the
     * same certificate and key, and client certificates where gRPC requires them), bearer tokens, stream bounds and
     * readiness, until this server closes. {@code template} renders chat requests; null answers them with 400.
     * Returns the bound port.
     */
    public int serveHttp(InetSocketAddress address, ChatTemplate template) throws IOException {
        http = OpenAiServer.start(address, security.tls(), new OpenAiServer.Api(replicas, model.getName(), template,
                security.tokens(), this::serving, replicas.metrics().prometheus(), streams));
        return http.port();
    }

    /**
     * Readiness: what the health service answers for {@code flover.v1.Generation}. The server as a whole ({@code ""})
     * is SERVING from the bind to the close, which is liveness: a server waiting for workers is alive, not ready.
     */
    public void setServing(boolean serving) {
        if (closed.get()) {
            return;
        }
        this.serving = serving;
        health.setStatus(GenerationGrpc.SERVICE_NAME, serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    }

    /** Readiness as {@link #setServing} last set it: what health answers for {@code flover.v1.Generation}. */
    public boolean serving() {
        return serving && !closed.get();
    }

    public static InetSocketAddress resolve(String host, int port) throws UnknownHostException {
        InetSocketAddress address = new InetSocketAddress(host, port);
        if (address.isUnresolved()) {
            throw new UnknownHostException("cannot listen on " + host + ": unknown host");
        }
        return address;
    }

    /** What ListModels says about the model in {@code dir}. */
    public static ModelInfo info(Path dir, ModelConfig c) throws IOException {
        DType dtype;
        try (Checkpoint ck = Checkpoint.open(dir)) {
            dtype = ck.mainDtype();
        }
        return ModelInfo.newBuilder()
                .setName(dir.toAbsolutePath().normalize().getFileName().toString())
                .setArchitecture(c.architecture().hfName())
                .setContextLength(c.maxPositions())
                .setDtype(dtype.name())
                .setVocabSize(c.vocabSize())
                .build();
    }

    public static Tokenizer tokenizer(Path dir) throws IOException {
        return Tokenizer.exists(dir) ? Tokenizer.load(dir) : null;
    }

    /**
     * The graceful stop: not ready any more, new requests refused with UNAVAILABLE, those accepted given up to
     * {@code timeout} to finish; then {@link #close}, which ends the rest with UNAVAILABLE.
     */
    public void drainAndClose(Duration timeout) {
        setServing(false);
        try {
            if (!replicas.drain(timeout)) {
                Scheduler.Stats s = replicas.stats();
                LOG.warning("drain timeout: ending " + (s.running() + s.waiting()) + " requests still in flight");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        close();
    }

    /** The bound port (the chosen one when started with port 0). */
    public int port() {
        return server.getPort();
    }

    public Replicas replicas() {
        return replicas;
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
        replicas.close();
        if (http != null) {
            http.close(); // after the replicas, which end the streams still open
        }
        try {
            if (!server.awaitTermination(SHUTDOWN_GRACE_SECONDS, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            server.shutdownNow();
            Thread.currentThread().interrupt();
        } finally {
            try {
                resources.close();
            } catch (Exception e) {
                LOG.log(Level.WARNING, "releasing the server's resources failed", e);
            }
        }
    }
}
