package io.flover.cli;

import static io.flover.cli.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.server.FloverServer;
import io.flover.server.ServerTesting;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code flover bench serve}: its statistics, a whole run against a real server, and its flag errors. */
class BenchServeCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final byte[] PNG_MAGIC = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    @TempDir
    static Path model;

    static FloverServer server;

    @BeforeAll
    static void start() throws Exception {
        RandomCheckpoint.write(model, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 3, s -> { });
        server = ServerTesting.start(model);
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    @Test
    void percentilesInterpolateBetweenClosestRanks() {
        double[] sorted = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        assertEquals(5.5, BenchReport.percentile(sorted, 50), 1e-12);
        assertEquals(9.1, BenchReport.percentile(sorted, 90), 1e-12);  // rank 0.9 * 9 = 8.1: 9 + 0.1 * (10 - 9)
        assertEquals(9.91, BenchReport.percentile(sorted, 99), 1e-12);
        assertEquals(10, BenchReport.percentile(sorted, 100), 1e-12);
        BenchReport.Summary s = BenchReport.Summary.of(new double[] {40, 10, 30, 20});
        assertEquals(25, s.mean(), 1e-12);
        assertEquals(25, s.p50(), 1e-12);                               // rank 1.5
        assertEquals(37, s.p90(), 1e-12);                               // rank 2.7: 30 + 0.7 * 10
        assertEquals(39.7, s.p99(), 1e-12);                             // rank 2.97
        assertEquals(new BenchReport.Summary(7, 7, 7, 7), BenchReport.Summary.of(new double[] {7}));
        assertNull(BenchReport.Summary.of(new double[0]));
    }

    /** A stall is a gap that some stream spans between two of its tokens, not a stream waiting for its first. */
    @Test
    void theLongestStallIsAGapThatAStreamSpans() {
        LoadGenerator.Trace a = trace(10, 20, 30, 100);  // waits 70 between its tokens at 30 and 100
        LoadGenerator.Trace b = trace(40, 50, 60);       // fills 30..100 with tokens at 40, 50, 60
        LoadGenerator.Trace c = trace(200, 220);         // alone from 200: 100..200 is no stall, 200..220 is
        assertEquals(40, BenchReport.longestStall(List.of(a, b, c)), "60..100: a waits, b is done");
        assertEquals(70, BenchReport.longestStall(List.of(a, c)));
        assertEquals(20, BenchReport.longestStall(List.of(c)));
        assertEquals(0, BenchReport.longestStall(List.of(trace(5))));
    }

    private static LoadGenerator.Trace trace(long... deliveries) {
        LoadGenerator.Trace t = new LoadGenerator.Trace(new Workload.Request(0, new int[1], deliveries.length), 0,
                done -> { });
        System.arraycopy(deliveries, 0, t.deliveryNanos, 0, deliveries.length);
        t.deliveries = deliveries.length;
        return t;
    }

    @Test
    void aRunAgainstAServerGetsEveryTokenAskedFor(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("run.json");
        GenerateCommandTest.Run r = run("bench", "serve", "--server", "127.0.0.1:" + server.port(), "--requests", "24",
                "--rate", "200", "--prompt-len", "4:12", "--output-len", "8:24", "--ignore-eos", "--seed", "5",
                "--json", json.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("completed          24 of 24"), r.out());
        assertTrue(r.out().contains("| TTFT |"), r.out());

        JsonNode got = JSON.readTree(json.toFile());
        assertEquals(24, got.get("completed").asInt());
        assertEquals(0, got.get("failed").asInt());
        assertEquals(model.getFileName().toString(), got.get("model").get("name").asText());
        assertEquals(2048, got.get("model").get("vocab_size").asInt());
        assertEquals("poisson", got.get("workload").get("arrivals").asText());
        for (String metric : List.of("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "send_lag_ms")) {
            for (String stat : List.of("mean", "p50", "p90", "p99")) {
                assertTrue(got.get(metric).get(stat).asDouble() >= 0, metric + " " + stat);
            }
            assertTrue(got.get(metric).get("p50").asDouble() <= got.get(metric).get("p99").asDouble(), metric);
        }
        assertTrue(got.get("ttft_ms").get("mean").asDouble() > 0);
        assertTrue(got.get("e2e_ms").get("p50").asDouble() >= got.get("ttft_ms").get("p50").asDouble());
        assertTrue(got.get("request_throughput_per_s").asDouble() > 0);
        assertTrue(got.get("generator_cpu_s").asDouble() > 0);

        JsonNode requests = got.get("per_request");
        assertEquals(24, requests.size());
        long outputTokens = 0;
        for (JsonNode q : requests) {
            assertEquals(q.get("max_tokens").asInt(), q.get("output_tokens").asInt(), q.toString());
            assertTrue(q.get("max_tokens").asInt() >= 8 && q.get("max_tokens").asInt() <= 24, q.toString());
            assertTrue(q.get("prompt_tokens").asInt() >= 4 && q.get("prompt_tokens").asInt() <= 12, q.toString());
            assertTrue(q.get("failure").isNull());
            outputTokens += q.get("output_tokens").asInt();
        }
        assertEquals(outputTokens, got.get("output_tokens").asLong());

        byte[] png = Files.readAllBytes(dir.resolve("run.png"));
        assertTrue(png.length > 1000, "PNG of " + png.length + " bytes");
        assertArrayEquals(PNG_MAGIC, Arrays.copyOf(png, PNG_MAGIC.length));
        ServerTesting.assertPoolWhole(server.replicas());
    }

    @Test
    void theOpenAiApiCarriesTheSameWorkload(@TempDir Path dir) throws Exception {
        int http = server.serveHttp(new java.net.InetSocketAddress("127.0.0.1", 0), null);
        Path json = dir.resolve("http.json");
        GenerateCommandTest.Run r = run("bench", "serve", "--api", "openai", "--server", "127.0.0.1:" + http,
                "--requests", "16", "--rate", "200", "--prompt-len", "4:12", "--output-len", "8:24", "--ignore-eos",
                "--seed", "5", "--json", json.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("completed          16 of 16"), r.out());
        JsonNode got = JSON.readTree(json.toFile());
        assertEquals("openai", got.get("api").asText());
        assertEquals(model.getFileName().toString(), got.get("model").get("name").asText());
        for (JsonNode q : got.get("per_request")) {
            assertEquals(q.get("max_tokens").asInt(), q.get("output_tokens").asInt(), q.toString());
            assertTrue(q.get("ttft_ms").asDouble() > 0, q.toString());
        }
        assertTrue(got.get("itl_ms").get("p50").asDouble() > 0);
        GenerateCommandTest.Run bad = run("bench", "serve", "--api", "rest", "--server", "127.0.0.1:" + http);
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().contains("--api must be grpc or openai"), bad.err());
        ServerTesting.assertPoolWhole(server.replicas());
    }

    /**
     * llama.cpp's server as its sources shape it: {@code meta.n_vocab} instead of {@code vocab_size}, chunks
     * without token ids (one token each, but a token ending inside a UTF-8 character is held back and sent with
     * the next), and a final chunk with {@code finish_reason} and {@code usage}.
     */
    @Test
    void itDrivesAServerWithoutTokenIdsLikeLlamaCpps(@TempDir Path dir) throws Exception {
        com.sun.net.httpserver.HttpServer llama = com.sun.net.httpserver.HttpServer.create(
                new java.net.InetSocketAddress("127.0.0.1", 0), 0);
        llama.createContext("/v1/models", x -> respond(x, "application/json",
                "{\"object\":\"list\",\"data\":[{\"id\":\"m.gguf\",\"object\":\"model\","
                        + "\"meta\":{\"n_vocab\":32000,\"n_ctx_train\":2048}}]}"));
        llama.createContext("/v1/completions", x -> {
            int maxTokens = JSON.readTree(x.getRequestBody()).get("max_tokens").asInt();
            StringBuilder events = new StringBuilder();
            for (int sent = 0; sent < maxTokens; ) {
                int held = sent % 5 == 3 && sent + 2 <= maxTokens ? 2 : 1;
                events.append("data: {\"choices\":[{\"text\":\"x\",\"index\":0,\"finish_reason\":null}]}\n\n");
                sent += held;
            }
            events.append("data: {\"choices\":[{\"text\":\"\",\"index\":0,\"finish_reason\":\"length\"}],"
                    + "\"usage\":{\"completion_tokens\":").append(maxTokens).append("}}\n\ndata: [DONE]\n\n");
            respond(x, "text/event-stream", events.toString());
        });
        llama.start();
        try {
            Path json = dir.resolve("llama.json");
            GenerateCommandTest.Run r = run("bench", "serve", "--api", "openai", "--server",
                    "127.0.0.1:" + llama.getAddress().getPort(), "--requests", "12", "--rate", "100",
                    "--output-len", "4:40", "--json", json.toString());
            assertEquals(0, r.exitCode(), r.err());
            JsonNode got = JSON.readTree(json.toFile());
            assertEquals(12, got.get("completed").asInt());
            for (JsonNode q : got.get("per_request")) {
                assertEquals(q.get("max_tokens").asInt(), q.get("output_tokens").asInt(), q.toString());
            }
        } finally {
            llama.stop(0);
        }
    }

    private static void respond(com.sun.net.httpserver.HttpExchange x, String type, String body)
            throws java.io.IOException {
        byte[] bytes = body.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        x.getResponseHeaders().set("Content-Type", type);
        x.sendResponseHeaders(200, bytes.length);
        try (var out = x.getResponseBody()) {
            out.write(bytes);
        }
    }

    @Test
    void refusedRequestsAreCountedByStatus(@TempDir Path dir) throws Exception {
        // One running and one waiting at most: of requests sent all at once, the others are refused.
        try (FloverServer small = ServerTesting.start(model, new SchedulerConfig(new Policy.Fusion(), 1, 256, 1))) {
            Path json = dir.resolve("run.json");
            GenerateCommandTest.Run r = run("bench", "serve", "--server", "127.0.0.1:" + small.port(),
                    "--requests", "8", "--output-len", "300", "--ignore-eos", "--json", json.toString(),
                    "--plot", dir.resolve("plot.png").toString());
            assertEquals(0, r.exitCode(), r.err());
            JsonNode got = JSON.readTree(json.toFile());
            int failed = got.get("failed").asInt();
            assertTrue(failed >= 1 && failed <= 7, got.toString());
            assertEquals(8, got.get("completed").asInt() + failed);
            assertEquals(failed, got.get("failures").get("RESOURCE_EXHAUSTED").asInt(), got.get("failures").toString());
            assertTrue(r.out().contains("RESOURCE_EXHAUSTED " + failed), r.out());
            assertTrue(Files.size(dir.resolve("plot.png")) > 1000);
        }
    }

    @Test
    void theSelfTestMeasuresTheGeneratorAlone(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("self.json");
        GenerateCommandTest.Run r = run("bench", "serve", "--self-test", "--requests", "300", "--interval-ms", "1",
                "--output-len", "lognormal:32:0.5:128", "--json", json.toString());
        assertEquals(0, r.exitCode(), r.err());
        JsonNode got = JSON.readTree(json.toFile());
        assertEquals(300, got.get("completed").asInt());
        assertEquals("constant", got.get("workload").get("arrivals").asText());
        for (JsonNode q : got.get("per_request")) {
            assertEquals(q.get("max_tokens").asInt(), q.get("output_tokens").asInt(), q.toString());
        }
        assertTrue(Files.size(dir.resolve("self.png")) > 1000);

        Path http = dir.resolve("self-http.json");
        r = run("bench", "serve", "--self-test", "--api", "openai", "--requests", "50", "--output-len", "8:32",
                "--json", http.toString());
        assertEquals(0, r.exitCode(), r.err());
        for (JsonNode q : JSON.readTree(http.toFile()).get("per_request")) {
            assertEquals(q.get("max_tokens").asInt(), q.get("output_tokens").asInt(), q.toString());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"--rate=-1", "--rate=0", "--rate=fast", "--output-len=5:3", "--prompt-len=0",
            "--interval-ms=-2", "--requests=0", "--warmup=-1"})
    void aBadFlagIsOneLineNamingIt(String flag) {
        GenerateCommandTest.Run r = run("bench", "serve", "--server", "127.0.0.1:" + server.port(), flag);
        assertEquals(2, r.exitCode());
        String name = flag.substring(0, flag.indexOf('='));
        assertTrue(r.err().startsWith("flover bench serve: " + name), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void otherMistakesAreOneLineToo() {
        GenerateCommandTest.Run r = run("bench", "serve", "--requests", "4");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover bench serve: --server HOST:PORT is required"), r.err());
        r = run("bench", "serve", "--server", "127.0.0.1:" + server.port(), "--rate", "2", "--interval-ms", "5");
        assertTrue(r.err().startsWith("flover bench serve: --rate and --interval-ms"), r.err());
        r = run("bench", "serve", "--server", "localhost");
        assertTrue(r.err().startsWith("flover bench serve: --server must be HOST:PORT"), r.err());
        r = run("bench", "serve", "--server", "127.0.0.1:" + server.port(), "--prompt-len", "2000", "--output-len", "100");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover bench serve: --prompt-len/--output-len") && r.err().contains("2048"), r.err());
        r = run("bench", "serve", "--server", "127.0.0.1:1", "--requests", "1");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover bench serve: UNAVAILABLE"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }
}
