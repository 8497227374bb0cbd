package io.flover.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.coordinator.GenerationRequest;
import io.flover.coordinator.Generator;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.worker.LoadedModel;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** SIGTERM on a coordinator under load: the requests in flight complete, new ones get UNAVAILABLE, it exits 0. */
class DrainIT {
    @Test
    void requestsInFlightAtSigtermCompleteAndNewOnesAreRefused() throws Exception {
        Path model = Path.of(DrainIT.class.getResource("/golden/llama-tiny-f32/config.json").toURI()).getParent();
        int n = 8;
        int tokens = 200;
        int[][] prompts = new int[n][];
        int[][] expected = new int[n][];
        try (CpuKernels kernels = new CpuKernels(1); LoadedModel m = LoadedModel.open(model, new CpuBackend(kernels))) {
            Generator alone = new Generator(m.lm(), null);
            for (int i = 0; i < n; i++) {
                prompts[i] = new int[] {1 + i, 7, 11 + i};
                expected[i] = alone.generate(GenerationRequest.greedy(prompts[i], tokens).withIgnoreEos(), t -> { })
                        .tokenIds();
            }
        }
        try (ProcessCluster cluster = new ProcessCluster("drain")) {
            // One sequence at a time: most requests are still queued when the signal comes, and must finish too.
            int port = cluster.startCoordinator(model, 1, "--max-batch", "1", "--drain-timeout", "120");
            cluster.startWorker();
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.awaitServing(channel, ProcessCluster.START);
            ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
            AtomicInteger started = new AtomicInteger();
            List<Future<int[]>> got = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int[] prompt = prompts[i];
                got.add(clients.submit(() -> TensorParallelClusterIT.generate(channel, prompt, tokens, started)));
            }
            ProcessCluster.await("the first tokens", Duration.ofSeconds(60), () -> started.get() > 0);
            ProcessCluster.Node coordinator = cluster.node("coordinator");
            coordinator.signal("TERM");
            ProcessCluster.await("the coordinator to drain", Duration.ofSeconds(30),
                    () -> coordinator.output().contains("shutting down"));
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
                    () -> TensorParallelClusterIT.generate(channel, prompts[0], 4, new AtomicInteger()));
            assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.getStatus().toString());
            for (int i = 0; i < n; i++) {
                assertArrayEquals(expected[i], got.get(i).get(120, TimeUnit.SECONDS), "request " + i);
            }
            assertTrue(coordinator.process().waitFor(30, TimeUnit.SECONDS), "the coordinator exits once drained");
            assertEquals(0, coordinator.process().exitValue());
            clients.shutdownNow();
            channel.shutdownNow();
        }
    }
}
