package io.flover.server;

import static io.flover.server.ServerTesting.assertIdleWithin;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A hundred clients that stop reading cost the server a bounded buffer each, and only until the stall timeout:
 * then their requests are cancelled, their KV blocks are free again, and the server served others all along.
 */
class StalledClientsTest {
    private static final int STALLED = 100;
    private static final int MAX_TOKENS = 1500;
    private static final Duration STALL = Duration.ofSeconds(2);

    @TempDir
    static Path model;

    @Test
    void stalledStreamsAreCancelledAfterTheTimeoutWhileOthersAreServed() throws Exception {
        GenerationServiceTest.TRANSPORT_LOGS.forEach(l -> l.setLevel(Level.SEVERE));
        RandomCheckpoint.write(model, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 7, s -> { });
        SchedulerConfig config = new SchedulerConfig(new Policy.Fusion(), 128, 512, 1024);
        EmbeddedServer.Options options = new EmbeddedServer.Options(model, "127.0.0.1", 0, 2, 1, 64 << 20, config);
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

    private static long usedHeap() throws InterruptedException {
        MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(50);
        }
        return memory.getHeapMemoryUsage().getUsed();
    }
}
