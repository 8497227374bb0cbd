package io.flover.cli;

import io.flover.kernels.Device;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.model.ModelConfig;
import io.flover.proto.v1.ModelInfo;
import io.flover.server.EmbeddedServer;
import io.flover.server.FloverServer;
import io.flover.worker.KvMemory;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.ScheduledExecutorService;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model over gRPC (flover.v1.Generation, grpc.health.v1, server reflection) and the "
                + "OpenAI-compatible HTTP API until Ctrl-C or SIGTERM, in one process.", "Without --model it serves the small random-weight demo model."})
final class ServeCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Hugging Face model directory")
    Path model;

    @Option(names = "--demo", description = "serve the random-weight demo model (also the default without --model)")
    boolean demo;

    @Option(names = "--host", defaultValue = "0.0.0.0", description = "address to listen on (default: ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--port", defaultValue = "50051", description = "port to listen on, 0 for any (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--drain-timeout", paramLabel = "S", defaultValue = "30",
            description = "on SIGTERM, seconds the requests in flight get to finish while new ones are refused (default: ${DEFAULT-VALUE})")
    long drainTimeoutSeconds;

    @Mixin
    SchedulerFlags scheduler;

    @Mixin
    MetricsFlags metrics;

    @Mixin
    SecurityFlags security;

    @Mixin
    HttpFlags http;

    @Mixin
    KvMemoryFlags kv;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Mixin
    DeviceFlags device;

    @Option(names = "--tp", defaultValue = "1",
            description = "tensor-parallel ranks in this process, sharing the threads (default: ${DEFAULT-VALUE})")
    int tensorParallel;

    @Override
    public Integer call() throws Exception {
        EmbeddedServer.Options options = options();
        Duration drainTimeout = Flags.drainTimeout(drainTimeoutSeconds);
        Flags.oneLineLogs();
        if (model == null) {
            Flags.log((demo ? "" : "no --model given: ") + "serving the random-weight demo model " + options.modelDir());
        }
        metrics.start(host);
        FloverServer server = EmbeddedServer.start(options, new ServingMetrics(metrics.registry()), security.security(),
                http.streams());
        metrics.readiness(server::serving);
        logModel(options, server);
        try {
            http.start(server, options.modelDir(), host, security.tlsCert != null);
        } catch (IOException | RuntimeException e) {
            server.close(); // e.g. the HTTP port is taken: nothing may keep serving
            throw e;
        }
        Flags.log("listening on " + host + ":" + server.port() + " (policy " + scheduler.policy + ")");
        ScheduledExecutorService ticker = BusyLine.start(server.replicas());
        Flags.onShutdown(() -> {
            ticker.shutdownNow();
            server.drainAndClose(drainTimeout);
            metrics.stop();
        });
        server.awaitTermination();
        return 0;
    }

    /** Checks every flag before anything is loaded, so a typo costs no model load and names the flag. */
    private EmbeddedServer.Options options() throws Exception {
        if (model != null && demo) {
            throw new IllegalArgumentException("--model and --demo cannot be combined");
        }
        Flags.requirePort("--port", port);
        http.check();
        Flags.require(threads >= 1, "--threads must be at least 1, got " + threads);
        Flags.require(tensorParallel >= 1, "--tp must be at least 1, got " + tensorParallel);
        Device on = device.device();
        Flags.require(!on.cuda() || tensorParallel == 1, "--tp " + tensorParallel + " with --device " + on
                + ": one process drives one GPU; run a coordinator and a worker per GPU for tensor parallelism");
        KvMemory kvMemory = kv.kvMemory(on);
        SchedulerConfig config = scheduler.config();
        Path dir = model != null ? model : ModelCache.defaultModel();
        return new EmbeddedServer.Options(dir, host, port, threads, tensorParallel, kvMemory, config, on);
    }

    private void logModel(EmbeddedServer.Options o, FloverServer server) throws IOException {
        ModelConfig c = server.replicas().model();
        ModelInfo info = FloverServer.info(o.modelDir(), c);
        Scheduler.Stats s = server.replicas().stats();
        Flags.log(String.format("model %s: %s, %s, context %d%s; KV cache: %d blocks, %d positions (%s)",
                info.getName() + " on " + o.device(), info.getArchitecture(), info.getDtype(), c.maxPositions(),
                o.tensorParallel() > 1 ? ", " + o.tensorParallel() + " tensor-parallel ranks" : "", s.totalBlocks(),
                (long) s.totalBlocks() * o.scheduler().blockSize(),
                kv.describe()));
    }
}
