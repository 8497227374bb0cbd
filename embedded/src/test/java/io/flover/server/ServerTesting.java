package io.flover.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.coordinator.Policy;
import io.flover.coordinator.Replicas;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.proto.v1.Finished;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.TokenIds;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Servers on loopback over test models, the golden cases, and what a stream returned. */
public final class ServerTesting {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ServerTesting() {
    }

    /**
     * A golden checkpoint from the transformer module's test resources (no tokenizer), or a golden GGUF file when
     * {@code name} ends with {@code .gguf}.
     */
    public static Path golden(String name) throws Exception {
        if (name.endsWith(".gguf")) {
            return Path.of(ServerTesting.class.getResource("/golden/gguf/" + name).toURI());
        }
        return Path.of(ServerTesting.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    /** The expected greedy ids of a golden model: a quantized GGUF file has its own, the others their checkpoint's. */
    static Path expected(String name) throws Exception {
        if (!name.endsWith(".gguf")) {
            return golden(name).resolve("expected.json");
        }
        String base = name.substring(0, name.length() - ".gguf".length());
        Path own = golden(name).resolveSibling(base + ".expected.json");
        return java.nio.file.Files.exists(own) ? own : golden(base).resolve("expected.json");
    }

    public record Golden(int[] prompt, int[] greedy) {
    }

    public static List<Golden> cases(String name) throws Exception {
        List<Golden> out = new ArrayList<>();
        for (JsonNode c : JSON.readTree(expected(name).toFile()).get("cases")) {
            out.add(new Golden(JSON.treeToValue(c.get("prompt_ids"), int[].class),
                    JSON.treeToValue(c.get("greedy_ids"), int[].class)));
        }
        return out;
    }

    /** A server on a free loopback port with 2 compute threads and 16 MiB of KV cache. */
    public static FloverServer start(Path model, SchedulerConfig config) throws Exception {
        return EmbeddedServer.start(new EmbeddedServer.Options(model, "127.0.0.1", 0, 2, 1, 16 << 20, config));
    }

    public static FloverServer start(Path model) throws Exception {
        return start(model, SchedulerConfig.defaults(new Policy.Fusion()));
    }

    public static ManagedChannel channel(FloverServer server) {
        return Grpc.newChannelBuilder("127.0.0.1:" + server.port(), InsecureChannelCredentials.create()).build();
    }

    public static void close(ManagedChannel channel) throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    /** A greedy request over ids that runs to max_tokens. */
    public static GenerateRequest.Builder ids(int[] prompt, int maxTokens) {
        return GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addAllIds(Arrays.stream(prompt).boxed().toList()))
                .setMaxTokens(maxTokens)
                .setIgnoreEos(true);
    }

    /** A whole stream: its deltas, then its Finished. */
    public record Streamed(List<GenerateResponse> deltas, Finished finished) {
        public static Streamed of(Iterator<GenerateResponse> stream) {
            List<GenerateResponse> deltas = new ArrayList<>();
            while (stream.hasNext()) {
                GenerateResponse r = stream.next();
                if (r.hasFinished()) {
                    assertFalse(stream.hasNext(), "Finished must be the last message");
                    return new Streamed(deltas, r.getFinished());
                }
                deltas.add(r);
            }
            throw new AssertionError("the stream ended without Finished");
        }

        public int[] ids() {
            return deltas.stream().flatMap(d -> d.getDelta().getTokenIdsList().stream()).mapToInt(Integer::intValue).toArray();
        }

        public String text() {
            StringBuilder s = new StringBuilder();
            deltas.forEach(d -> s.append(d.getDelta().getText()));
            return s.toString();
        }
    }

    /** Once nothing runs, every KV block is back in the pool (waits for the step that ended the last request). */
    public static void assertPoolWhole(Replicas scheduler) throws InterruptedException {
        assertIdleWithin(scheduler, 5_000);
    }

    public static void assertIdleWithin(Replicas scheduler, long millis) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (!idle(scheduler.stats()) && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        Scheduler.Stats s = scheduler.stats();
        assertEquals(0, s.running(), s.toString());
        assertEquals(0, s.waiting(), s.toString());
        assertEquals(s.totalBlocks(), s.freeBlocks(), "KV blocks leaked: " + s);
    }

    private static boolean idle(Scheduler.Stats s) {
        return s.running() == 0 && s.waiting() == 0 && s.freeBlocks() == s.totalBlocks();
    }
}
