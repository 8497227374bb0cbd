package io.flover.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.TokenIds;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A coordinator and worker processes on loopback: tensor-parallel groups give the golden greedy ids to concurrent
 * clients, from a checkpoint and from a Q8_0 GGUF file; groups form as workers join; a worker killed mid-generation loses its group, whose requests finish on
 * the other group with the right tokens; with no group left, requests are refused with UNAVAILABLE.
 */
class TensorParallelClusterIT {

    record Golden(int[] prompt, int[] greedy) {
    }

    @ParameterizedTest(name = "{0} on {1} workers")
    @CsvSource({"gpt2-tiny-q8_0.gguf, 2", "llama-tiny-f32, 4"})
    void groupsOfWorkerProcessesGiveTheGoldenIds(String name, int tp) throws Exception {
        List<Golden> cases = cases(name);
        try (ProcessCluster cluster = new ProcessCluster("tp-" + name + "-" + tp)) {
            int port = cluster.startCoordinator(golden(name), tp);
            for (int i = 0; i < tp; i++) {
                cluster.startWorker();
            }
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.awaitServing(channel, ProcessCluster.START);
            ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
            List<Future<int[]>> got = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                Golden g = cases.get(i % cases.size());
                int max = 1 + (i * 7) % 24;
                got.add(clients.submit(() -> generate(channel, g.prompt(), max)));
            }
            for (int i = 0; i < 16; i++) {
                int[] want = Arrays.copyOf(cases.get(i % cases.size()).greedy(), 1 + (i * 7) % 24);
                assertArrayEquals(want, got.get(i).get(60, TimeUnit.SECONDS), name + " tp " + tp + " stream " + i);
            }
            clients.shutdownNow();
            channel.shutdownNow();
        }
    }

    /** Coordinator and workers on mutual TLS: a worker accepts only a coordinator with a certificate from its CA. */
    @Test
    void workersServeOverMutualTls() throws Exception {
        List<Golden> cases = cases("llama-tiny-f32");
        String ca = tls("ca.pem");
        try (ProcessCluster cluster = new ProcessCluster("mtls")) {
            int port = cluster.startCoordinator(golden("llama-tiny-f32"), 2, "--worker-tls-ca", ca,
                    "--worker-tls-cert", tls("client.pem"), "--worker-tls-key", tls("client.key"));
            for (int i = 0; i < 2; i++) {
                cluster.startWorker("--tls-cert", tls("server.pem"), "--tls-key", tls("server.key"),
                        "--tls-client-ca", ca);
            }
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.awaitServing(channel, ProcessCluster.START);
            assertArrayEquals(cases.getFirst().greedy(), generate(channel, cases.getFirst().prompt(), 24));
            channel.shutdownNow();
        }
    }

    /**
     * As in Kubernetes (k8s/components/internal-tls): every worker has the same certificate, for the name
     * flover-worker only, and is reached at an address it does not name; the coordinator checks for the name.
     */
    @Test
    void workersShareOneCertificateForANameTheCoordinatorChecks() throws Exception {
        List<Golden> cases = cases("llama-tiny-f32");
        String ca = tls("ca.pem");
        try (ProcessCluster cluster = new ProcessCluster("mtls-name")) {
            int port = cluster.startCoordinator(golden("llama-tiny-f32"), 2, "--worker-tls-ca", ca,
                    "--worker-tls-cert", tls("named.pem"), "--worker-tls-key", tls("named.key"),
                    "--worker-tls-server-name", "flover-worker");
            for (int i = 0; i < 2; i++) {
                cluster.startWorker("--tls-cert", tls("named.pem"), "--tls-key", tls("named.key"),
                        "--tls-client-ca", ca);
            }
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.awaitServing(channel, ProcessCluster.START);
            assertArrayEquals(cases.getFirst().greedy(), generate(channel, cases.getFirst().prompt(), 24));
            channel.shutdownNow();
        }
    }

    /** Each worker sizes its own KV cache when it loads its shard; a group uses the fewest blocks of its ranks. */
    @Test
    void aGroupUsesTheKvBlocksOfItsSmallestWorker() throws Exception {
        Golden golden = cases("llama-tiny-f32").getFirst();
        try (ProcessCluster cluster = new ProcessCluster("kv-sizes")) {
            int metricsPort = ProcessCluster.freePort();
            int port = cluster.startCoordinator(golden("llama-tiny-f32"), 2, "--metrics-port",
                    Integer.toString(metricsPort));
            cluster.startWorker("--kv-memory", "4m");
            cluster.startWorker("--kv-memory", "1m");
            ManagedChannel channel = ProcessCluster.channel(port);
            ProcessCluster.awaitServing(channel, ProcessCluster.START);
            assertArrayEquals(golden.greedy(), generate(channel, golden.prompt(), golden.greedy().length));
            // llama-tiny on 2 ranks: each holds 1 of the 2 KV heads (of 16) in 2 layers, keys and values of 16
            // positions in float32: 4096 bytes, 256 blocks in 1m.
            long perBlock = 2L * 2 * 16 * 16 * Float.BYTES;
            String metrics = ProcessCluster.scrape(metricsPort);
            assertEquals((1 << 20) / perBlock, ProcessCluster.metric(metrics, "flover_kv_cache_blocks{state=\"free\"}")
                    + ProcessCluster.metric(metrics, "flover_kv_cache_blocks{state=\"used\"}"), metrics);
            channel.shutdownNow();
        }
    }

    @Test
    void groupsFormAsWorkersJoinAndALostGroupsRequestsFinishOnAnother() throws Exception {
        List<Golden> cases = cases("llama-tiny-f32");
        try (ProcessCluster cluster = new ProcessCluster("scaling")) {
            int port = cluster.startCoordinator(golden("llama-tiny-f32"), 2, "--max-batch", "4");
            ManagedChannel channel = ProcessCluster.channel(port);
            // Alive but not ready while no group serves.
            ProcessCluster.await("the coordinator to start", ProcessCluster.START,
                    () -> ProcessCluster.health(channel, "") == HealthCheckResponse.ServingStatus.SERVING);
            assertEquals(HealthCheckResponse.ServingStatus.NOT_SERVING,
                    ProcessCluster.health(channel, GenerationGrpc.SERVICE_NAME));
            ProcessCluster.Node first = cluster.startWorker();
            cluster.startWorker();
            ProcessCluster.awaitServing(channel, ProcessCluster.START);
            assertArrayEquals(cases.getFirst().greedy(), generate(channel, cases.getFirst().prompt(), 24));

            ProcessCluster.Node coordinator = cluster.node("coordinator");
            cluster.startWorker();
            cluster.startWorker();
            ProcessCluster.await("a second group to form", ProcessCluster.START, () -> coordinator.output().contains("group g2 serves"));

            // Small batches keep most requests queued on both groups while one of them loses a worker.
            int n = 96;
            AtomicInteger finished = new AtomicInteger();
            ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
            List<Future<int[]>> got = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Golden g = cases.get(i % cases.size());
                got.add(clients.submit(() -> {
                    int[] ids = generate(channel, g.prompt(), 24);
                    finished.incrementAndGet();
                    return ids;
                }));
            }
            ProcessCluster.await("some requests to finish", ProcessCluster.START, () -> finished.get() >= 8);
            assertTrue(finished.get() < n / 2, "the kill must come mid-load, but " + finished.get() + " had finished");
            first.kill();
            for (int i = 0; i < n; i++) {
                assertArrayEquals(cases.get(i % cases.size()).greedy(), got.get(i).get(120, TimeUnit.SECONDS),
                        "request " + i);
            }
            assertTrue(coordinator.output().contains("retiring group g1"), "the killed worker's group was retired");

            // The last group goes too: requests are refused, not left waiting.
            cluster.node("worker-3").kill();
            ProcessCluster.await("the coordinator to notice", ProcessCluster.START, () -> coordinator.output().contains("retiring group g2"));
            StatusRuntimeException refused = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                    () -> generate(channel, cases.getFirst().prompt(), 4));
            assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.getStatus().toString());
            clients.shutdownNow();
            channel.shutdownNow();
        }
    }

    static int[] generate(ManagedChannel channel, int[] prompt, int maxTokens) {
        return generate(channel, prompt, maxTokens, new AtomicInteger());
    }

    /** A greedy stream to its end; {@code streaming} counts the requests that have had a token. */
    static int[] generate(ManagedChannel channel, int[] prompt, int maxTokens, AtomicInteger streaming) {
        GenerateRequest request = GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addAllIds(Arrays.stream(prompt).boxed().toList()))
                .setMaxTokens(maxTokens).setIgnoreEos(true).build();
        List<Integer> ids = new ArrayList<>();
        Iterator<GenerateResponse> stream = GenerationGrpc.newBlockingStub(channel)
                .withDeadlineAfter(120, TimeUnit.SECONDS).generate(request);
        while (stream.hasNext()) {
            GenerateResponse r = stream.next();
            if (r.hasFinished()) {
                assertTrue(r.getFinished().getError().isEmpty(), r.getFinished().getError());
            }
            if (ids.isEmpty() && r.getDelta().getTokenIdsCount() > 0) {
                streaming.incrementAndGet();
            }
            ids.addAll(r.getDelta().getTokenIdsList());
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private static String tls(String file) throws Exception {
        return Path.of(TensorParallelClusterIT.class.getResource("/tls/" + file).toURI()).toString();
    }

    /** A golden checkpoint, or a golden GGUF file (with expected ids of its own) when the name ends with .gguf. */
    static Path golden(String name) throws Exception {
        if (name.endsWith(".gguf")) {
            return Path.of(TensorParallelClusterIT.class.getResource("/golden/gguf/" + name).toURI());
        }
        return Path.of(TensorParallelClusterIT.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    static List<Golden> cases(String name) throws Exception {
        ObjectMapper json = new ObjectMapper();
        Path expected = name.endsWith(".gguf")
                ? golden(name).resolveSibling(name.replace(".gguf", ".expected.json"))
                : golden(name).resolve("expected.json");
        List<Golden> out = new ArrayList<>();
        for (JsonNode c : json.readTree(expected.toFile()).get("cases")) {
            out.add(new Golden(json.treeToValue(c.get("prompt_ids"), int[].class),
                    json.treeToValue(c.get("greedy_ids"), int[].class)));
        }
        return out;
    }
}
