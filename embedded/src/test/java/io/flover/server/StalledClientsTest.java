package io.flover.server;

import static io.flover.server.ServerTesting.assertIdleWithin;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.proto.v1.FinishReason;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.logging.Level;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A hundred clients that stop reading cost the server a bounded buffer each, and only until the stall timeout:
 * then their requests are cancelled, their KV blocks are free again, and the server served others all along. The
 * same for gRPC streams and the HTTP API's Server-Sent Events, which share one bounded stream.
 */
class StalledClientsTest {
    private static final int STALLED = 100;
    private static final int MAX_TOKENS = 1500;
    private static final Duration STALL = Duration.ofSeconds(2);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final SchedulerConfig CONFIG = new SchedulerConfig(new Policy.Fusion(), 128, 512, 1024);

    @TempDir
    static Path model;

    @BeforeAll
    static void writeModel() throws Exception {
        RandomCheckpoint.write(model, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 7, s -> { });
    }

    @Test
    void stalledStreamsAreCancelledAfterTheTimeoutWhileOthersAreServed() throws Exception {
        GenerationServiceTest.TRANSPORT_LOGS.forEach(l -> l.setLevel(Level.SEVERE));
        EmbeddedServer.Options options = new EmbeddedServer.Options(model, "127.0.0.1", 0, 2, 1, 64 << 20, CONFIG);
        // A client that reads nothing: the server may send it a few bytes before HTTP/2 flow control stops it.
        ManagedChannel stalledChannel;
        ManagedChannel served;
        try (FloverServer server = EmbeddedServer.start(options, ServingMetrics.none(), FloverServer.Security.NONE,
                new FloverServer.Streams(8, STALL))) {
            stalledChannel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext()
                    .flowControlWindow(64).build();
            served = ServerTesting.channel(server);
            // warm up, then the baseline
            GenerationGrpc.newBlockingStub(served).generateUnary(ServerTesting.ids(new int[] {1, 2}, 64).build());
            long heapBefore = usedHeap();
            long generatedBefore = server.replicas().stats().generatedTokens();

            List<Iterator<GenerateResponse>> stalled = new ArrayList<>();
            for (int i = 0; i < STALLED; i++) {
                stalled.add(GenerationGrpc.newBlockingStub(stalledChannel)
                        .generate(ServerTesting.ids(new int[] {1 + i % 50, 7, 9}, MAX_TOKENS).build()));
                stalled.getLast().hasNext(); // starts the call (the first message arrives; no more are read)
            }

            // Others are served meanwhile, whole.
            for (int i = 0; i < 5; i++) {
                var out = ServerTesting.Streamed.of(GenerationGrpc.newBlockingStub(served)
                        .generate(ServerTesting.ids(new int[] {3, 4, 5}, 32).build()));
                assertEquals(FinishReason.FINISH_REASON_LENGTH, out.finished().getReason());
                assertEquals(32, out.ids().length);
            }

            // Each stalled request is cancelled once its client has read nothing for the stall timeout.
            assertIdleWithin(server.replicas(), 120_000);
            long generated = server.replicas().stats().generatedTokens() - generatedBefore;
            assertTrue(generated < STALLED * MAX_TOKENS / 2, "stalled requests ran on: " + generated + " tokens");
            long heapAfter = usedHeap();
            assertTrue(heapAfter - heapBefore < 16 << 20,
                    "heap grew by " + (heapAfter - heapBefore) / 1024 + " KiB with " + STALLED + " stalled clients");

            // What they were sent ends with the reason.
            for (Iterator<GenerateResponse> stream : stalled) {
                StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> {
                    while (stream.hasNext()) {
                        assertTrue(stream.next().hasDelta(), "a stalled request must not finish normally");
                    }
                });
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.toString());
                assertTrue(e.getStatus().getDescription().contains("read nothing"), e.getStatus().getDescription());
            }
            ServerTesting.close(stalledChannel);
            ServerTesting.close(served);
        } finally {
            GenerationServiceTest.TRANSPORT_LOGS.forEach(l -> l.setLevel(null));
        }
    }

    @Test
    void stalledHttpStreamsAreCutOffAfterTheTimeoutWhileOthersAreServed() throws Exception {
        EmbeddedServer.Options options = new EmbeddedServer.Options(model, "127.0.0.1", 0, 2, 1, 64 << 20, CONFIG);
        try (FloverServer server = EmbeddedServer.start(options, ServingMetrics.none(), FloverServer.Security.NONE,
                new FloverServer.Streams(8, STALL))) {
            int port = server.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
            HttpClient http = HttpClient.newHttpClient();
            URI completions = URI.create("http://127.0.0.1:" + port + "/v1/completions");
            String served = completion(new int[] {3, 4, 5}, 32);
            String alone = streamedText(http, completions, served); // warm up, then the baseline
            long heapBefore = usedHeap();
            long generatedBefore = server.replicas().stats().generatedTokens();

            // Clients that read nothing, with receive buffers so small that the server's writes soon wait on them.
            List<Socket> stalled = new ArrayList<>();
            for (int i = 0; i < STALLED; i++) {
                Socket socket = new Socket();
                socket.setReceiveBufferSize(1024);
                socket.connect(new InetSocketAddress("127.0.0.1", port));
                byte[] body = completion(new int[] {1 + i % 50, 7, 9}, MAX_TOKENS).replace("}", ", \"logprobs\": 5}")
                        .getBytes(StandardCharsets.UTF_8); // larger events: the socket's buffer fills sooner
                socket.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                        + "application/json\r\nContent-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                socket.getOutputStream().write(body);
                socket.getOutputStream().flush();
                stalled.add(socket);
            }

            // Others are served meanwhile, whole.
            for (int i = 0; i < 5; i++) {
                assertEquals(alone, streamedText(http, completions, served));
            }

            // Each stalled request is cancelled once its client has read nothing for the stall timeout.
            assertIdleWithin(server.replicas(), 120_000);
            long generated = server.replicas().stats().generatedTokens() - generatedBefore;
            assertTrue(generated < STALLED * MAX_TOKENS / 2, "stalled requests ran on: " + generated + " tokens");
            long heapAfter = usedHeap();
            assertTrue(heapAfter - heapBefore < 16 << 20,
                    "heap grew by " + (heapAfter - heapBefore) / 1024 + " KiB with " + STALLED + " stalled clients");

            // Their connections were reset before the end of the stream.
            for (Socket socket : stalled) {
                socket.setSoTimeout(30_000);
                try (socket) {
                    String received = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                    assertFalse(received.contains("[DONE]"), "a stalled stream must not end normally");
                } catch (SocketException e) {
                    assertTrue(e.getMessage().contains("reset"), e.toString());
                }
            }
        }
    }

    @Test
    void anAnswerThatTakesLongerThanTheStallTimeoutIsNotCutOff() throws Exception {
        Duration stall = Duration.ofSeconds(1);
        EmbeddedServer.Options options = new EmbeddedServer.Options(model, "127.0.0.1", 0, 2, 1, 64 << 20, CONFIG);
        try (FloverServer server = EmbeddedServer.start(options, ServingMetrics.none(), FloverServer.Security.NONE,
                new FloverServer.Streams(8, stall))) {
            int port = server.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
            int maxTokens = server.replicas().model().maxPositions() - 8;
            long start = System.nanoTime();
            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                    + port + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(completion(new int[] {1, 2}, maxTokens)
                    .replace(", \"stream\": true", ", \"n\": 8"))).build(), HttpResponse.BodyHandlers.ofString());
            Duration took = Duration.ofNanos(System.nanoTime() - start);
            assertEquals(200, r.statusCode(), r.body());
            assertEquals(8 * maxTokens, JSON.readTree(r.body()).at("/usage/completion_tokens").asInt());
            assertTrue(took.compareTo(stall.multipliedBy(2)) > 0, "the answer came too soon to show anything: " + took);
        }
    }

    /** A greedy streamed completion of {@code prompt} that runs to {@code maxTokens}. */
    private static String completion(int[] prompt, int maxTokens) {
        return "{\"prompt\": " + Arrays.toString(prompt) + ", \"max_tokens\": " + maxTokens
                + ", \"temperature\": 0, \"ignore_eos\": true, \"stream\": true}";
    }

    /** The text a streamed completion returns, checking that it ends with [DONE]. */
    private static String streamedText(HttpClient http, URI uri, String body) throws Exception {
        HttpResponse<java.util.stream.Stream<String>> r = http.send(HttpRequest.newBuilder(uri)
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofLines());
        assertEquals(200, r.statusCode());
        StringBuilder text = new StringBuilder();
        List<String> events = r.body().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
        assertEquals("[DONE]", events.getLast());
        for (String e : events.subList(0, events.size() - 1)) {
            text.append(JSON.readTree(e).at("/choices/0/text").asText());
        }
        return text.toString();
    }

    private static long usedHeap() throws InterruptedException {
        MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(50);
        }
        return memory.getHeapMemoryUsage().getUsed();
    }
}
