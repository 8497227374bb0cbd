package io.flover.cli;

import io.flover.coordinator.EmbeddedEngine;
import io.flover.coordinator.Policy;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.model.ModelConfig;
import io.flover.server.FloverServer;
import io.flover.worker.LoadedModel;
import java.nio.file.Path;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model over gRPC (flover.v1.Generation, grpc.health.v1, server reflection) until "
                + "Ctrl-C or SIGTERM.", "Without --model it serves the small random-weight demo model."})
final class ServeCommand implements Callable<Integer> {
    private static final String LOG_FORMAT_PROPERTY = "java.util.logging.SimpleFormatter.format";
    private static final String LOG_FORMAT = "%1$tF %1$tT.%1$tL %4$s %3$s: %5$s%6$s%n";

    @Option(names = "--model", description = "Hugging Face model directory")
    Path model;

    @Option(names = "--demo", description = "serve the random-weight demo model (also the default without --model)")
    boolean demo;

    @Option(names = "--host", defaultValue = "0.0.0.0", description = "address to listen on (default: ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--port", defaultValue = "50051", description = "port to listen on, 0 for any (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--policy", defaultValue = "fusion",
            description = "fusion, dynamic-batching or sequential (default: ${DEFAULT-VALUE})")
    String policy;

    @Option(names = "--kv-memory", paramLabel = "SIZE", defaultValue = "1g",
            description = "memory for the KV cache, e.g. 512m or 2g (default: ${DEFAULT-VALUE})")
    String kvMemory;

    @Option(names = "--max-batch", defaultValue = "64", description = "live sequences at most (default: ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--max-queue-delay", paramLabel = "MS", defaultValue = "10",
            description = "dynamic-batching: how long the oldest request waits for a batch to fill, in ms (default: ${DEFAULT-VALUE})")
    long maxQueueDelayMs;

    @Option(names = "--max-step-tokens", defaultValue = "256",
            description = "tokens per fused step: decode tokens plus prompt chunks (default: ${DEFAULT-VALUE})")
    int maxStepTokens;

    @Option(names = "--max-waiting", defaultValue = "1024",
            description = "requests waiting for admission before new ones are refused (default: ${DEFAULT-VALUE})")
    int maxWaiting;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Override
    public Integer call() throws Exception {
        FloverServer.Options options = options();
        // The scheduler and gRPC log through java.util.logging: one line per record there too, unless set already.
        if (System.getProperty(LOG_FORMAT_PROPERTY) == null) {
            System.setProperty(LOG_FORMAT_PROPERTY, LOG_FORMAT);
        }
        if (model == null) {
            log((demo ? "" : "no --model given: ") + "serving the random-weight demo model " + options.modelDir());
        }
        FloverServer server = FloverServer.start(options);
        logModel(server);
        log("listening on " + host + ":" + server.port() + " (policy " + policy + ")");

        ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().name("flover-stats").daemon().unstarted(r));
        ticker.scheduleAtFixedRate(new BusyLine(server.scheduler()), 1, 1, TimeUnit.SECONDS);
        Runtime.getRuntime().addShutdownHook(Thread.ofPlatform().name("flover-shutdown").unstarted(() -> {
            log("shutting down");
            ticker.shutdownNow();
            server.close();
            log("stopped");
            // The JVM would exit with 128 + the signal; a server that stopped as asked has succeeded.
            Runtime.getRuntime().halt(0);
        }));
        server.awaitTermination();
        return 0;
    }

    /** Checks every flag before anything is loaded, so a typo costs no model load and names the flag. */
    private FloverServer.Options options() throws Exception {
        if (model != null && demo) {
            throw new IllegalArgumentException("--model and --demo cannot be combined");
        }
        long kvBytes = ByteSize.parse("--kv-memory", kvMemory);
        require(port >= 0 && port < 65536, "--port must be in [0, 65535], got " + port);
        require(threads >= 1, "--threads must be at least 1, got " + threads);
        require(maxBatch >= 1, "--max-batch must be at least 1, got " + maxBatch);
        require(maxStepTokens >= maxBatch, "--max-step-tokens (" + maxStepTokens
                + ") must be at least --max-batch (" + maxBatch + "): every live sequence decodes a token per step");
        require(maxWaiting >= 1, "--max-waiting must be at least 1, got " + maxWaiting);
        require(maxQueueDelayMs >= 0, "--max-queue-delay must not be negative, got " + maxQueueDelayMs);
        Policy p;
        try {
            p = Policy.parse(policy, maxBatch, Duration.ofMillis(maxQueueDelayMs));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--policy: " + e.getMessage(), e);
        }
        Path dir = model != null ? model : ModelCache.defaultModel();
        return new FloverServer.Options(dir, host, port, threads, kvBytes,
                new SchedulerConfig(p, maxBatch, maxStepTokens, maxWaiting));
    }

    /**
     * A log line on stderr in the format of the process's other logs. Not through java.util.logging itself: its
     * own shutdown hook may close the handlers before ours logs the shutdown.
     */
    private static void log(String message) {
        System.err.printf(LOG_FORMAT, ZonedDateTime.now(), null, "flover", "INFO", message, "");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    private void logModel(FloverServer server) {
        LoadedModel m = server.model();
        ModelConfig c = m.config();
        Scheduler.Stats s = server.scheduler().stats();
        log(String.format("model %s: %s, %s, %.1fM parameters, context %d; KV cache: %d blocks, %d positions (%s)",
                m.dir().toAbsolutePath().normalize().getFileName(), c.architecture().hfName(), m.weightsDtype(),
                m.weightBytes() / (double) m.weightsDtype().bytes() / 1e6, c.maxPositions(), s.totalBlocks(),
                (long) s.totalBlocks() * EmbeddedEngine.BLOCK_SIZE, kvMemory));
    }

    /** A line per second while there is work: the load, KV usage and recent throughput; nothing when idle. */
    private static final class BusyLine implements Runnable {
        private final Scheduler scheduler;
        private long lastTokens;
        private long lastNanos = System.nanoTime();

        BusyLine(Scheduler scheduler) {
            this.scheduler = scheduler;
            this.lastTokens = scheduler.stats().generatedTokens();
        }

        @Override
        public void run() {
            Scheduler.Stats s = scheduler.stats();
            long now = System.nanoTime();
            long tokens = s.generatedTokens() - lastTokens;
            double seconds = (now - lastNanos) / 1e9;
            lastTokens = s.generatedTokens();
            lastNanos = now;
            if (s.running() == 0 && s.waiting() == 0 && tokens == 0) {
                return;
            }
            double kvUsed = 100.0 * (s.totalBlocks() - s.freeBlocks()) / s.totalBlocks();
            log(String.format("running %d, waiting %d, KV %.0f%% used, %.0f tokens/s", s.running(), s.waiting(),
                    kvUsed, tokens / seconds));
        }
    }
}
