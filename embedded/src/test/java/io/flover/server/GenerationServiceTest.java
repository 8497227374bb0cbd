package io.flover.server;

import static io.flover.server.ServerTesting.assertIdleWithin;
import static io.flover.server.ServerTesting.assertPoolWhole;
import static io.flover.server.ServerTesting.ids;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.proto.v1.FinishReason;
import io.flover.proto.v1.Finished;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerateResult;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ListModelsRequest;
import io.flover.proto.v1.ModelInfo;
import io.flover.proto.v1.SamplingParams;
import io.flover.proto.v1.Timings;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The client API over real gRPC on loopback: the golden numbers come through unchanged, alone and fused; bad
 * requests are refused naming the field; a client that cancels or goes away frees its slot and blocks at once.
 */
class GenerationServiceTest {
    /** The golden Llama (ids only, context 256). */
    static FloverServer golden;
    /** A random-weight Llama with a tokenizer and a context of 2048. */
    static FloverServer text;
    static ManagedChannel goldenChannel;
    static ManagedChannel textChannel;
    static List<ServerTesting.Golden> cases;

    @TempDir
    static Path textModel;

    /**
     * gRPC's server transport logs a warning with a stack trace for an oversized request and for a client that goes
     * away with messages still queued for it; these tests do both on purpose.
     */
    static final List<Logger> TRANSPORT_LOGS = List.of(
            Logger.getLogger("io.grpc.netty.shaded.io.grpc.netty.NettyServerStream"),
            Logger.getLogger("io.grpc.netty.shaded.io.grpc.netty.NettyServerHandler"));

    @BeforeAll
    static void start() throws Exception {
        TRANSPORT_LOGS.forEach(l -> l.setLevel(Level.SEVERE));
        golden = ServerTesting.start(ServerTesting.golden("llama-tiny-f32"));
        RandomCheckpoint.write(textModel, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 7, s -> { });
        text = ServerTesting.start(textModel);
        goldenChannel = ServerTesting.channel(golden);
        textChannel = ServerTesting.channel(text);
        cases = ServerTesting.cases("llama-tiny-f32");
    }

    @AfterAll
    static void stop() throws Exception {
        ServerTesting.close(goldenChannel);
        ServerTesting.close(textChannel);
        golden.close();
        text.close();
        TRANSPORT_LOGS.forEach(l -> l.setLevel(null));
    }

    @AfterEach
    void poolsAreWhole() throws Exception {
        assertPoolWhole(golden.replicas());
        assertPoolWhole(text.replicas());
    }

    static GenerationGrpc.GenerationBlockingStub stub(ManagedChannel channel) {
        return GenerationGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
    }

    @Test
    void streamingYieldsTheGoldenGreedyIds() {
        for (int i = 0; i < cases.size(); i++) {
            ServerTesting.Golden g = cases.get(i);
            GenerateRequest.Builder request = ids(g.prompt(), 24);
            if (i == 0) {
                request.setRequestId("mine");
            }
            var out = ServerTesting.Streamed.of(stub(goldenChannel).generate(request.build()));
            assertArrayEquals(g.greedy(), out.ids(), "case " + i);
            out.deltas().forEach(d -> assertTrue(d.getDelta().getTokenIdsCount() > 0, "an empty delta was sent"));
            Finished f = out.finished();
            assertEquals(FinishReason.FINISH_REASON_LENGTH, f.getReason());
            assertEquals(g.prompt().length, f.getUsage().getPromptTokens());
            assertEquals(24, f.getUsage().getCompletionTokens());
            assertEquals("", f.getError());
            assertTrue(i == 0 ? f.getRequestId().equals("mine") : f.getRequestId().matches("req-\\d+"), f.getRequestId());
            Timings t = f.getTimings();
            assertTrue(t.getQueueSeconds() >= 0 && t.getQueueSeconds() <= t.getTimeToFirstTokenSeconds()
                    && t.getTimeToFirstTokenSeconds() > 0 && t.getTimeToFirstTokenSeconds() <= t.getTotalSeconds(), t.toString());
        }
    }

    @Test
    void sixteenConcurrentStreamsEachGetTheirGoldenPrefix() throws Exception {
        ExecutorService clients = Executors.newFixedThreadPool(16);
        try {
            List<Future<int[]>> got = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                ServerTesting.Golden g = cases.get(i % cases.size());
                int max = 1 + (i * 7) % 24;
                got.add(clients.submit(() -> ServerTesting.Streamed.of(stub(goldenChannel).generate(ids(g.prompt(), max).build())).ids()));
            }
            for (int i = 0; i < 16; i++) {
                int[] want = Arrays.copyOf(cases.get(i % cases.size()).greedy(), 1 + (i * 7) % 24);
                assertArrayEquals(want, got.get(i).get(30, TimeUnit.SECONDS), "stream " + i);
            }
        } finally {
            clients.shutdownNow();
        }
    }

    @Test
    void unaryReturnsWhatStreamingReturns() {
        ServerTesting.Golden g = cases.get(1);
        GenerateResult r = stub(goldenChannel).generateUnary(ids(g.prompt(), 24).build());
        assertArrayEquals(g.greedy(), r.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray());
        assertEquals(FinishReason.FINISH_REASON_LENGTH, r.getFinished().getReason());
        assertEquals(24, r.getFinished().getUsage().getCompletionTokens());
    }

    @Test
    void textStopsBeforeTheStopStringAndNeverSplitsACharacter() throws Exception {
        GenerateRequest.Builder request = GenerateRequest.newBuilder().setText("Once upon a time").setMaxTokens(48)
                .setIgnoreEos(true);
        var whole = ServerTesting.Streamed.of(stub(textChannel).generate(request.build()));
        // the deltas are the text of all ids decoded at once: no character was cut at a delta boundary
        assertEquals(Tokenizer.load(textModel).decode(whole.ids(), true), whole.text());

        // a stop string the greedy continuation is known to contain, from its well-formed beginning (random
        // weights also generate invalid UTF-8, which rightly decodes to U+FFFD)
        String clean = whole.text().split("\uFFFD")[0];
        int at = clean.length() / 2;
        String stop = clean.substring(at, at + 3);
        String expected = clean.substring(0, clean.indexOf(stop));

        var out = ServerTesting.Streamed.of(stub(textChannel).generate(request.addStop(stop).build()));
        assertEquals(FinishReason.FINISH_REASON_STOP, out.finished().getReason());
        assertEquals(expected, out.text());
        for (GenerateResponse d : out.deltas()) {
            assertFalse(d.getDelta().getText().contains(stop), d.toString());
            assertFalse(d.getDelta().getText().contains("\uFFFD"), d.toString());
        }
        GenerateResult unary = stub(textChannel).generateUnary(request.build());
        assertEquals(expected, unary.getText());
        assertEquals(FinishReason.FINISH_REASON_STOP, unary.getFinished().getReason());
        assertEquals(out.finished().getUsage(), unary.getFinished().getUsage());
    }

    static Stream<Arguments> badRequests() {
        return Stream.of(
                Arguments.of("empty prompt", ids(new int[0], 4), "prompt"),
                Arguments.of("empty text prompt", GenerateRequest.newBuilder().setText(""), "prompt"),
                Arguments.of("no prompt", GenerateRequest.newBuilder().setMaxTokens(4), "prompt"),
                Arguments.of("beyond the context", ids(new int[] {1, 2, 3}, 254), "max_tokens"),
                Arguments.of("NaN temperature", ids(new int[] {1}, 4)
                        .setSampling(SamplingParams.newBuilder().setTemperature(Float.NaN)), "temperature"),
                Arguments.of("negative top_p", ids(new int[] {1}, 4)
                        .setSampling(SamplingParams.newBuilder().setTopP(-0.5f)), "top_p"),
                Arguments.of("id beyond the vocabulary", ids(new int[] {1, 512}, 4), "prompt.token_ids"),
                Arguments.of("id 2^32-1", ids(new int[] {-1}, 4), "4294967295"),
                Arguments.of("17 stop strings", ids(new int[] {1}, 4).addAllStop(Collections.nCopies(17, "x")), "stop"),
                Arguments.of("a long stop string", ids(new int[] {1}, 4).addStop("x".repeat(257)), "stop[0]"),
                Arguments.of("stop id beyond the vocabulary", ids(new int[] {1}, 4).addStopTokenIds(600), "stop_token_ids"),
                Arguments.of("text without a tokenizer", GenerateRequest.newBuilder().setText("hi"), "prompt.text"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badRequests")
    void badRequestsAreInvalidArgumentNamingTheField(String what, GenerateRequest.Builder request, String field) {
        StatusRuntimeException streamed = assertThrows(StatusRuntimeException.class,
                () -> stub(goldenChannel).generate(request.build()).hasNext());
        StatusRuntimeException unary = assertThrows(StatusRuntimeException.class,
                () -> stub(goldenChannel).generateUnary(request.build()));
        for (StatusRuntimeException e : List.of(streamed, unary)) {
            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), what);
            assertTrue(e.getStatus().getDescription().contains(field), what + ": " + e.getStatus());
        }
    }

    @Test
    void aFullQueueIsResourceExhausted() throws Exception {
        // dynamic batching that waits a minute for a batch of 4: two requests fill the queue of 2 and stay there
        var config = new SchedulerConfig(new Policy.DynamicBatching(4, Duration.ofMinutes(1)), 4, 64, 2);
        try (FloverServer server = ServerTesting.start(ServerTesting.golden("llama-tiny-f32"), config)) {
            ManagedChannel channel = ServerTesting.channel(server);
            Context.CancellableContext waiting = Context.current().withCancellation();
            try {
                waiting.run(() -> {
                    for (int i = 0; i < 2; i++) {
                        GenerationGrpc.newStub(channel).generate(ids(new int[] {1}, 4).build(), new Ignore());
                    }
                });
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (server.replicas().stats().waiting() < 2 && System.nanoTime() < deadline) {
                    Thread.sleep(1);
                }
                StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                        () -> stub(channel).generate(ids(new int[] {1}, 4).build()).hasNext());
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.getStatus().toString());
                waiting.cancel(null);
                assertIdleWithin(server.replicas(), 1_000);
            } finally {
                waiting.cancel(null);
                ServerTesting.close(channel);
            }
        }
    }

    @Test
    void aRequestOverTheSizeLimitIsRefused() {
        GenerateRequest huge = GenerateRequest.newBuilder().setText("x".repeat(FloverServer.MAX_REQUEST_BYTES)).build();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> stub(textChannel).generateUnary(huge));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.getStatus().toString());
    }

    /** Closing the server ends the requests in flight with an error they can read, and refuses new ones. */
    @Test
    void closingTheServerEndsStreamsInFlight() throws Exception {
        FloverServer server = ServerTesting.start(textModel);
        ManagedChannel channel = ServerTesting.channel(server);
        try {
            Iterator<GenerateResponse> stream = stub(channel).generate(ids(new int[] {5, 6, 7}, 2000).build());
            assertTrue(stream.next().hasDelta());
            server.close();
            StatusRuntimeException ended = assertThrows(StatusRuntimeException.class, () -> {
                while (stream.hasNext()) {
                    stream.next();
                }
            });
            assertEquals(Status.Code.UNAVAILABLE, ended.getStatus().getCode(), ended.getStatus().toString());
            assertTrue(ended.getStatus().getDescription().contains("shut down"), ended.getStatus().toString());
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                    () -> stub(channel).generateUnary(ids(new int[] {1}, 4).build()));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.getStatus().toString());
        } finally {
            server.close();
            ServerTesting.close(channel);
        }
    }

    @Test
    void aClientThatCancelsFreesItsSlotAndBlocksAtOnce() throws Exception {
        Context.CancellableContext call = Context.current().withCancellation();
        Iterator<GenerateResponse> stream = call.call(() -> stub(textChannel).generate(ids(new int[] {5, 6, 7}, 2000).build()));
        assertCancelledMidStream(stream, call::close);
    }

    @Test
    void aClientThatDisconnectsFreesItsSlotAndBlocksAtOnce() throws Exception {
        ManagedChannel channel = ServerTesting.channel(text);
        Iterator<GenerateResponse> stream = stub(channel).generate(ids(new int[] {5, 6, 7}, 2000).build());
        assertCancelledMidStream(stream, channel::shutdownNow);
        ServerTesting.close(channel);
    }

    /** Reads a few deltas of a long generation, lets the client go, and checks the server stopped generating. */
    private static void assertCancelledMidStream(Iterator<GenerateResponse> stream, Runnable goAway) throws Exception {
        long before = text.replicas().stats().generatedTokens();
        for (int i = 0; i < 3; i++) {
            assertTrue(stream.next().hasDelta());
        }
        assertEquals(1, text.replicas().stats().running());
        goAway.run();
        assertIdleWithin(text.replicas(), 1_000);
        long generated = text.replicas().stats().generatedTokens() - before;
        assertTrue(generated < 2000, "the request ran to its end: " + generated + " tokens");
    }

    @Test
    void healthListModelsAndReflection() throws Exception {
        var health = HealthGrpc.newBlockingStub(goldenChannel);
        for (String service : List.of("", GenerationGrpc.SERVICE_NAME)) {
            assertEquals(ServingStatus.SERVING,
                    health.check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus(), service);
        }

        ModelInfo info = stub(goldenChannel).listModels(ListModelsRequest.getDefaultInstance()).getModels(0);
        assertEquals(ModelInfo.newBuilder().setName("llama-tiny-f32").setArchitecture("LlamaForCausalLM")
                .setContextLength(256).setDtype("F32").setVocabSize(512).build(), info);

        CompletableFuture<List<String>> services = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> reflection = ServerReflectionGrpc.newStub(goldenChannel)
                .serverReflectionInfo(new StreamObserver<>() {
                    @Override
                    public void onNext(ServerReflectionResponse r) {
                        services.complete(r.getListServicesResponse().getServiceList().stream()
                                .map(ServiceResponse::getName).toList());
                    }

                    @Override
                    public void onError(Throwable t) {
                        services.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        reflection.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        reflection.onCompleted();
        assertTrue(services.get(10, TimeUnit.SECONDS).containsAll(List.of(GenerationGrpc.SERVICE_NAME,
                HealthGrpc.SERVICE_NAME, ServerReflectionGrpc.SERVICE_NAME)), services.get().toString());
    }

    /** A client that reads nothing it is sent. */
    private static final class Ignore implements StreamObserver<GenerateResponse> {
        @Override
        public void onNext(GenerateResponse value) {
        }

        @Override
        public void onError(Throwable t) {
        }

        @Override
        public void onCompleted() {
        }
    }
}
