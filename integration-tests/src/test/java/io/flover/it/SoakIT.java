package io.flover.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.TokenIds;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * A bounded soak: mixed load (varied lengths, cancellations, bad requests) for {@code flover.soak.seconds}
 * (default 40) with a worker killed and replaced halfway. Afterwards the coordinator holds no KV block and no
 * extra threads, its heap is near where it started, and it still serves the golden ids.
 */
class SoakIT {

    @Test
    void mixedLoadWithAWorkerRestartLeavesNothingBehind() throws Exception {
        long seconds = Long.getLong("flover.soak.seconds", 40);
        List<TensorParallelClusterIT.Golden> cases = TensorParallelClusterIT.cases("llama-tiny-f32");
        int metricsPort = ProcessCluster.freePort();
        try (ProcessCluster cluster = new ProcessCluster("soak")) {
            int port = cluster.startCoordinator(TensorParallelClusterIT.golden("llama-tiny-f32"), 1,
                    "--max-batch", "8", "--metrics-port", Integer.toString(metricsPort));
            ProcessCluster.Node first = cluster.startWorker();
            cluster.startWorker();
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.Node coordinator = cluster.node("coordinator");
            ProcessCluster.await("two groups", ProcessCluster.START, () -> coordinator.output().contains("group g2 serves"));
            // Warm up with concurrency, so that thread pools have grown before the baseline.
            ExecutorService warmup = Executors.newVirtualThreadPerTaskExecutor();
            List<Future<int[]>> warm = new ArrayList<>();
            for (int i = 0; i < 32; i++) {
                int[] prompt = cases.get(i % cases.size()).prompt();
                warm.add(warmup.submit(() -> TensorParallelClusterIT.generate(channel, prompt, 8)));
            }
            for (Future<int[]> f : warm) {
                f.get(60, TimeUnit.SECONDS);
            }
            warmup.shutdown();
            String baseline = ProcessCluster.scrape(metricsPort);

            SplittableRandom random = new SplittableRandom(7);
            ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
            List<Future<?>> calls = new ArrayList<>();
            AtomicInteger wrong = new AtomicInteger();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            boolean restarted = false;
            while (System.nanoTime() < end) {
                if (!restarted && System.nanoTime() > end - TimeUnit.SECONDS.toNanos(seconds) / 2) {
                    first.kill();
                    cluster.startWorker();
                    restarted = true;
                }
                TensorParallelClusterIT.Golden g = cases.get(random.nextInt(cases.size()));
                int max = random.nextInt(1, 25);
                int kind = random.nextInt(10);
                calls.add(clients.submit(() -> {
                    switch (kind) {
                        case 0 -> cancelMidway(channel, g.prompt());
                        case 1 -> refused(channel);
                        default -> {
                            int[] ids = TensorParallelClusterIT.generate(channel, g.prompt(), max);
                            if (!Arrays.equals(Arrays.copyOf(g.greedy(), max), ids)) {
                                wrong.incrementAndGet();
                            }
                        }
                    }
                    return null;
                }));
                Thread.sleep(random.nextInt(1, 15));
            }
            for (Future<?> f : calls) {
                f.get(120, TimeUnit.SECONDS);
            }
            assertEquals(0, wrong.get(), "requests with wrong tokens");
            ProcessCluster.await("the worker that replaced the killed one to serve", ProcessCluster.START,
                    () -> ProcessCluster.metric(scrapeQuietly(metricsPort), "flover_num_groups") == 2);

            String after = ProcessCluster.scrape(metricsPort);
            assertEquals(0, ProcessCluster.metric(after, "flover_kv_cache_blocks{state=\"used\"}"), "KV blocks leaked");
            assertEquals(0, ProcessCluster.metric(after, "flover_num_requests_running") + ProcessCluster.metric(after, "flover_num_requests_waiting"));
            double threads = ProcessCluster.metric(after, "jvm_threads_live_threads");
            // A replaced worker brings new connections and their threads; a leak would grow with the load instead.
            assertTrue(threads <= ProcessCluster.metric(baseline, "jvm_threads_live_threads") + 24, "threads grew to " + threads);
            double heap = heapUsed(after);
            assertTrue(heap < heapUsed(baseline) + (256 << 20), "heap grew from " + heapUsed(baseline) + " to " + heap);
            assertArrayEquals(cases.getFirst().greedy(), TensorParallelClusterIT.generate(channel, cases.getFirst().prompt(), 24));
            clients.shutdownNow();
            channel.shutdownNow();
        }
    }

    private static void cancelMidway(ManagedChannel channel, int[] prompt) {
        Context.CancellableContext context = Context.current().withCancellation();
        context.run(() -> {
            Iterator<GenerateResponse> stream = GenerationGrpc.newBlockingStub(channel).generate(request(prompt, 200));
            try {
                stream.next();
            } catch (StatusRuntimeException ignored) {
                // refused before its first token (e.g. while its group was being replaced): nothing to cancel
            }
            context.cancel(null);
        });
    }

    private static void refused(ManagedChannel channel) {
        try {
            GenerationGrpc.newBlockingStub(channel).generate(request(new int[] {1, 2, 3}, 10_000)).next();
            throw new AssertionError("a request past the context was accepted");
        } catch (StatusRuntimeException expected) {
            // INVALID_ARGUMENT
        }
    }

    private static GenerateRequest request(int[] prompt, int maxTokens) {
        return GenerateRequest.newBuilder().setTokenIds(TokenIds.newBuilder().addAllIds(Arrays.stream(prompt).boxed()
                .toList())).setMaxTokens(maxTokens).setIgnoreEos(true).build();
    }


    private static String scrapeQuietly(int port) {
        try {
            return ProcessCluster.scrape(port);
        } catch (Exception e) {
            return "";
        }
    }

    private static double heapUsed(String exposition) {
        Matcher m = Pattern.compile("(?m)^jvm_memory_used_bytes\\{area=\"heap\"[^}]*} (\\S+)$").matcher(exposition);
        double sum = 0;
        while (m.find()) {
            sum += Double.parseDouble(m.group(1));
        }
        return sum;
    }

}
