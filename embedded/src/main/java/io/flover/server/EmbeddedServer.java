package io.flover.server;

import io.flover.coordinator.Replicas;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.kernels.Backend;
import io.flover.kernels.Device;
import io.flover.model.ModelConfig;
import io.flover.worker.KvMemory;
import io.flover.worker.LoadedModel;
import io.flover.worker.LocalTensorParallel;
import io.flover.worker.ShardExecutor;
import io.flover.worker.ShardLayout;
import io.flover.worker.StepRunner;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** A {@link FloverServer} over one embedded group: the model loaded in this process, on one rank or several. */
public final class EmbeddedServer {
    /** Ranks in one process only wait for each other's compute, never a network. */
    private static final Duration LOCAL_COLLECTIVE_TIMEOUT = Duration.ofMinutes(1);

    private EmbeddedServer() {
    }

    /**
     * What to serve and how, in one process.
     *
     * @param host the address to bind, e.g. 0.0.0.0 or 127.0.0.1
     * @param port 0 binds a free port; {@link FloverServer#port()} tells which
     * @param tensorParallel ranks of the in-process tensor-parallel group (1: no tensor parallelism)
     * @param kvMemory KV cache of the whole group
     * @param device where the model runs; tensor parallelism in one process ({@code tensorParallel > 1}) is CPU only
     */
    public record Options(Path modelDir, String host, int port, int threads, int tensorParallel, KvMemory kvMemory,
                          SchedulerConfig scheduler, Device device) {
        /** A CPU server with a KV cache of {@code kvMemoryBytes}. */
        public Options(Path modelDir, String host, int port, int threads, int tensorParallel, long kvMemoryBytes,
                       SchedulerConfig scheduler) {
            this(modelDir, host, port, threads, tensorParallel, KvMemory.of(kvMemoryBytes), scheduler, Device.CPU);
        }
    }

    /**
     * Loads the model, in {@code tensorParallel} shards if asked, starts its scheduler and binds the server; the
     * health service says SERVING from then on.
     */
    public static FloverServer start(Options o) throws IOException {
        return start(o, ServingMetrics.none(), FloverServer.Security.NONE);
    }

    /** {@link #start(Options)}, recording the serving meters in {@code metrics} and securing calls as asked. */
    public static FloverServer start(Options o, ServingMetrics metrics, FloverServer.Security security)
            throws IOException {
        return start(o, metrics, security, FloverServer.Streams.DEFAULT);
    }

    /** {@link #start(Options, ServingMetrics, FloverServer.Security)} with client streams bounded as asked. */
    public static FloverServer start(Options o, ServingMetrics metrics, FloverServer.Security security,
                                     FloverServer.Streams streams) throws IOException {
        InetSocketAddress address = FloverServer.resolve(o.host(), o.port());
        int tp = o.tensorParallel();
        if (tp > 1 && o.device().cuda()) {
            // Ranks in one process would share the GPU's one owner thread and wait on each other in all-reduce.
            throw new IllegalArgumentException("tensor parallelism in one process runs on the CPU; with a GPU, run a "
                    + "coordinator and a worker per GPU");
        }
        ModelConfig config = ModelConfig.load(o.modelDir());
        ShardLayout shard = ShardLayout.of(config, 0, tp); // checks that the model splits before anything loads
        long perBlock = shard.kvBytesPerBlock(config, o.scheduler().blockSize()) * tp;
        int maxSlots = o.scheduler().maxBatch();
        List<AutoCloseable> opened = new ArrayList<>();
        try {
            StepRunner runner;
            int blocks;
            if (tp == 1) {
                Backend backend = o.device().open(o.threads());
                opened.add(backend);
                LoadedModel model = LoadedModel.open(o.modelDir(), backend);
                opened.add(model);
                blocks = o.kvMemory().blocks(backend, perBlock);
                runner = new ShardExecutor(model.lm(), blocks, o.scheduler().blockSize(), maxSlots);
            } else {
                blocks = KvMemory.blocks(o.kvMemory().bytes(), perBlock);
                runner = LocalTensorParallel.open(o.modelDir(), tp, Math.max(1, o.threads() / tp), blocks,
                        o.scheduler().blockSize(), maxSlots, LOCAL_COLLECTIVE_TIMEOUT);
            }
            Replicas replicas = new Replicas(config, FloverServer.tokenizer(o.modelDir()), metrics);
            opened.addFirst(replicas); // schedulers stop (and close their runner) before the model is unmapped
            replicas.add(runner, blocks, o.scheduler());
            FloverServer server = FloverServer.serve(replicas, FloverServer.info(o.modelDir(), config), address, security,
                    streams, closeAll(opened));
            server.setServing(true);
            return server;
        } catch (IOException | RuntimeException e) {
            try {
                closeAll(opened).close();
            } catch (Exception suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** Closes in list order, every one even if some fail. */
    private static AutoCloseable closeAll(List<AutoCloseable> resources) {
        return () -> {
            Exception first = null;
            for (AutoCloseable r : resources) {
                try {
                    r.close();
                } catch (Exception e) {
                    if (first == null) {
                        first = e;
                    } else {
                        first.addSuppressed(e);
                    }
                }
            }
            if (first != null) {
                throw first;
            }
        };
    }
}
