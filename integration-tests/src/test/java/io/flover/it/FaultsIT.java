package io.flover.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A worker that stops answering (SIGSTOP) under 32 concurrent streams: its group is retired once a step outlasts
 * the step timeout, every request finishes on the other group with the right tokens, nothing hangs, and the
 * coordinator's metrics show every KV block back in the pool.
 */
class FaultsIT {

    @Test
    void aStoppedWorkerLosesItsGroupWithinTheStepTimeout() throws Exception {
        List<TensorParallelClusterIT.Golden> cases = TensorParallelClusterIT.cases("llama-tiny-f32");
        Path model = TensorParallelClusterIT.golden("llama-tiny-f32");
        int metricsPort = ProcessCluster.freePort();
        try (ProcessCluster cluster = new ProcessCluster("sigstop")) {
            int port = cluster.startCoordinator(model, 1, "--max-batch", "4", "--step-timeout", "3000",
                    "--metrics-port", Integer.toString(metricsPort));
            ProcessCluster.Node stopped = cluster.startWorker();
            cluster.startWorker();
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.Node coordinator = cluster.node("coordinator");
            ProcessCluster.await("two groups", ProcessCluster.START, () -> coordinator.output().contains("group g2 serves"));

            int n = 32;
            AtomicInteger started = new AtomicInteger();
            ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
            List<Future<int[]>> got = new ArrayList<>();
            for (int i = 0; i < n / 2; i++) {
                TensorParallelClusterIT.Golden g = cases.get(i % cases.size());
                got.add(clients.submit(() -> TensorParallelClusterIT.generate(channel, g.prompt(), 24, started)));
            }
            ProcessCluster.await("streams on both groups", ProcessCluster.START, () -> started.get() >= 8);
            stopped.signal("STOP");
            long stoppedAt = System.nanoTime();
            // A second wave after the stop: the first may have drained the stopped group already, and requests
            // routed to the least loaded group then reach it for sure.
            for (int i = n / 2; i < n; i++) {
                TensorParallelClusterIT.Golden g = cases.get(i % cases.size());
                got.add(clients.submit(() -> TensorParallelClusterIT.generate(channel, g.prompt(), 24, started)));
            }
            for (int i = 0; i < n; i++) {
                assertArrayEquals(cases.get(i % cases.size()).greedy(), got.get(i).get(120, TimeUnit.SECONDS),
                        "request " + i);
            }
            String log = coordinator.output();
            assertTrue(log.contains("did not answer step"), "the silent worker was found out by the step timeout");
            assertTrue(System.nanoTime() - stoppedAt < TimeUnit.SECONDS.toNanos(60), "nothing waited on the stopped worker");

            String metrics = ProcessCluster.scrape(metricsPort);
            assertEquals(0, ProcessCluster.metric(metrics, "flover_kv_cache_blocks{state=\"used\"}"), "KV blocks leaked");
            assertEquals(0, ProcessCluster.metric(metrics, "flover_num_requests_running"));
            assertEquals(1, ProcessCluster.metric(metrics, "flover_num_groups"));
            clients.shutdownNow();
            channel.shutdownNow();
        }
    }

    @Test
    void aWorkerStoppedWithSigtermHandsItsGroupsRequestsOverAndExitsZero() throws Exception {
        List<TensorParallelClusterIT.Golden> cases = TensorParallelClusterIT.cases("llama-tiny-f32");
        try (ProcessCluster cluster = new ProcessCluster("worker-sigterm")) {
            int port = cluster.startCoordinator(TensorParallelClusterIT.golden("llama-tiny-f32"), 1, "--max-batch", "4");
            ProcessCluster.Node leaving = cluster.startWorker();
            cluster.startWorker();
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.Node coordinator = cluster.node("coordinator");
            ProcessCluster.await("two groups", ProcessCluster.START, () -> coordinator.output().contains("group g2 serves"));
            int n = 32;
            AtomicInteger started = new AtomicInteger();
            ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
            List<Future<int[]>> got = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                TensorParallelClusterIT.Golden g = cases.get(i % cases.size());
                got.add(clients.submit(() -> TensorParallelClusterIT.generate(channel, g.prompt(), 24, started)));
            }
            ProcessCluster.await("streams on both groups", ProcessCluster.START, () -> started.get() >= 8);
            leaving.signal("TERM");
            for (int i = 0; i < n; i++) {
                assertArrayEquals(cases.get(i % cases.size()).greedy(), got.get(i).get(120, TimeUnit.SECONDS),
                        "request " + i);
            }
            assertTrue(leaving.process().waitFor(30, TimeUnit.SECONDS), "the worker exits once its group is retired");
            assertEquals(0, leaving.process().exitValue());
            assertTrue(coordinator.output().contains("left the cluster"), "the group was retired as the worker left");
            clients.shutdownNow();
            channel.shutdownNow();
        }
    }

}
