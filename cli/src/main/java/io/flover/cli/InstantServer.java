package io.flover.cli;

import io.flover.coordinator.Policy;
import io.flover.coordinator.Replicas;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.model.Architecture;
import io.flover.model.ModelConfig;
import io.flover.proto.v1.ModelInfo;
import io.flover.server.FloverServer;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.StepRunner;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.List;

/**
 * The server of {@code bench serve --self-test}: both client APIs over the scheduler as they are served, but with
 * steps that compute nothing (every sequence's next token is id 1). What the load generator measures against it
 * is its own cost, the API's and the scheduler's, with no model in the way.
 */
final class InstantServer implements AutoCloseable {
    /** A model shape for the scheduler's checks only: no weights exist, and no id ends a sequence. */
    static final ModelConfig MODEL = new ModelConfig(Architecture.LLAMA, 64, 64, 1, 1, 1, 64, 32000, 1 << 20, 1e-5f,
            10000, null, false, List.of(), -1);

    private final FloverServer server;
    private final int httpPort;

    private InstantServer(FloverServer server, int httpPort) {
        this.server = server;
        this.httpPort = httpPort;
    }

    /** Listens on free loopback ports. */
    static InstantServer start() throws IOException {
        Replicas replicas = new Replicas(MODEL, null, ServingMetrics.none());
        SchedulerConfig config = SchedulerConfig.defaults(new Policy.Fusion());
        replicas.add(new Instant(), MODEL.maxPositions() / config.blockSize(), config);
        ModelInfo info = ModelInfo.newBuilder().setName("instant (self-test)").setArchitecture("none")
                .setContextLength(MODEL.maxPositions()).setDtype("F32").setVocabSize(MODEL.vocabSize()).build();
        FloverServer server = FloverServer.serve(replicas, info, new InetSocketAddress("127.0.0.1", 0),
                FloverServer.Security.NONE, FloverServer.Streams.DEFAULT, replicas);
        server.setServing(true);
        try {
            return new InstantServer(server, server.serveHttp(new InetSocketAddress("127.0.0.1", 0), null));
        } catch (IOException | RuntimeException e) {
            server.close();
            throw e;
        }
    }

    int grpcPort() {
        return server.port();
    }

    int httpPort() {
        return httpPort;
    }

    @Override
    public void close() {
        server.close();
    }

    private static final class Instant implements StepRunner {
        @Override
        public StepResult run(Step step) {
            int[] sampled = new int[step.numSampled()];
            Arrays.fill(sampled, 1);
            return StepResult.of(sampled);
        }

        @Override
        public void reset() {
        }

        @Override
        public void close() {
        }
    }
}
