package io.flover.worker.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.InvalidProtocolBufferException;
import io.flover.collectives.Communicator;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.proto.v1.LoadShardRequest;
import io.flover.proto.v1.LoadShardResponse;
import io.flover.proto.v1.StepRequest;
import io.flover.proto.v1.StepResponse;
import io.flover.proto.v1.WorkerGrpc;
import io.flover.worker.KvMemory;
import io.flover.worker.SamplingParams;
import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import io.grpc.CallOptions;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The worker protocol from the coordinator's side: a loaded shard runs encoded steps (slot ops, chunks, sampling)
 * to the golden greedy ids; bad loads and bad steps get a status naming what is wrong, and a bad step drops the
 * shard rather than leaving it half-updated.
 */
class WorkerServiceTest {
    private CpuKernels kernels;
    private SimpleMeterRegistry metrics;
    private WorkerService service;
    private Server server;
    private ManagedChannel channel;

    /** The workers' KV memory in these tests. */
    private static final long KV_MEMORY = 1 << 20;

    @BeforeEach
    void start() throws Exception {
        kernels = new CpuKernels(2);
        serve(KvMemory.of(KV_MEMORY));
    }

    private void serve(KvMemory kvMemory) throws Exception {
        metrics = new SimpleMeterRegistry();
        service = new WorkerService(() -> new CpuBackend(kernels), kvMemory,
                (group, rank, peers, timeout) -> Communicator.solo(), metrics);
        server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(MalformedRequests.guard(service)).build().start();
        channel = Grpc.newChannelBuilder("127.0.0.1:" + server.getPort(), InsecureChannelCredentials.create()).build();
    }

    @AfterEach
    void stop() throws Exception {
        shutdown();
        kernels.close();
    }

    private void shutdown() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        service.close();
    }

    private static Path golden(String name) throws Exception {
        return Path.of(WorkerServiceTest.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    private static LoadShardRequest.Builder load() throws Exception {
        return LoadShardRequest.newBuilder().setModelDir(golden("llama-tiny-f32").toString()).setGroupId("g")
                .setRank(0).setWorldSize(1).addPeerAddresses("127.0.0.1:1").setBlockSize(16)
                .setMaxSlots(4).setCollectiveTimeoutMs(1000);
    }

    @Test
    void aShardHoldsTheKvBlocksItsMemoryFits() throws Exception {
        LoadShardResponse r = WorkerGrpc.newBlockingStub(channel).loadShard(load().build());
        // llama-tiny: 2 layers, 2 KV heads of 16; keys and values of 16 positions in float32.
        long perBlock = 2L * 2 * 16 * 2 * 16 * Float.BYTES;
        assertEquals(KV_MEMORY / perBlock, r.getNumKvBlocks());
        assertEquals(r.getNumKvBlocks() * perBlock, r.getKvCacheBytes());
    }

    @Test
    void aKvMemoryThatHoldsNoBlockIsAFailedPreconditionSayingSo() throws Exception {
        shutdown();
        serve(KvMemory.of(1000));
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> WorkerGrpc.newBlockingStub(channel).loadShard(load().build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().startsWith("this worker's KV memory: a KV memory of 1000 bytes "
                + "holds no block"), e.getStatus().getDescription());
        assertEquals(null, service.groupId(), "nothing stays loaded");
    }

    @Test
    void aLoadedShardRunsEncodedStepsToTheGoldenIds() throws Exception {
        WorkerGrpc.newBlockingStub(channel).loadShard(load().build());
        int[] prompt = {369};
        int[] golden = {39, 509, 116, 464, 356, 317};
        Steps steps = new Steps(channel);
        // the prompt in two sequences at once, one of them evicted halfway and the other moved into its slot
        StepResponse first = steps.run(new Step(0, List.of(new SlotOp.Admit(0, SamplingParams.GREEDY, 1, new int[] {0}),
                new SlotOp.Admit(1, SamplingParams.GREEDY, 1, new int[] {1})), new int[] {prompt[0], prompt[0]},
                new int[] {0, 1}, new int[] {1, 1}, new int[] {0, 0}, new boolean[] {true, true}));
        assertEquals(List.of(golden[0], golden[0]), first.getSampledList());
        int position = 1;
        int last = golden[0];
        for (int i = 1; i < golden.length; i++) {
            List<SlotOp> ops = i == 3 ? List.of(new SlotOp.Evict(0), new SlotOp.Move(1, 0)) : List.of();
            boolean both = i < 3;
            StepResponse r = steps.run(new Step(i, ops, both ? new int[] {last, last} : new int[] {last},
                    both ? new int[] {0, 1} : new int[] {0}, both ? new int[] {1, 1} : new int[] {1},
                    both ? new int[] {position, position} : new int[] {position}, both ? new boolean[] {true, true}
                    : new boolean[] {true}));
            assertEquals(i, r.getStepId());
            assertEquals(golden[i], r.getSampled(0), "step " + i);
            last = r.getSampled(0);
            position++;
        }
        assertEquals(golden.length, metrics.get("flover.worker.step.compute").timer().count());
        assertEquals(1.0, metrics.get("flover.worker.kv.blocks.held").gauge().value(), "one slot left, in one block");
        steps.close();
    }

    static Stream<Arguments> badLoads() {
        return Stream.of(
                Arguments.of("model_dir is empty", (UnaryOperator<LoadShardRequest.Builder>) b -> b.setModelDir("")),
                Arguments.of("rank 2 is not below world_size 2",
                        (UnaryOperator<LoadShardRequest.Builder>) b -> b.setRank(2).setWorldSize(2)),
                Arguments.of("peer_addresses has 1 entries",
                        (UnaryOperator<LoadShardRequest.Builder>) b -> b.setWorldSize(2)),
                Arguments.of("block_size", (UnaryOperator<LoadShardRequest.Builder>) b -> b.setBlockSize(0)),
                Arguments.of("peer_addresses: 'nowhere' is not host:port",
                        (UnaryOperator<LoadShardRequest.Builder>) b -> b.setPeerAddresses(0, "nowhere")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badLoads")
    void badLoadsAreInvalidArgumentNamingTheField(String message, UnaryOperator<LoadShardRequest.Builder> bad) throws Exception {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> WorkerGrpc.newBlockingStub(channel).loadShard(bad.apply(load()).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains(message), e.getStatus().getDescription());
    }

    @Test
    void aModelTheWorkerCannotReadIsAFailedPrecondition() throws Exception {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> WorkerGrpc.newBlockingStub(channel)
                .loadShard(load().setModelDir("/nonexistent/model").build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("model_dir"), e.getStatus().getDescription());
    }

    @Test
    void stepsNeedAShardAndABadStepDropsIt() throws Exception {
        Steps none = new Steps(channel);
        assertEquals(Status.Code.FAILED_PRECONDITION, none.error().getCode());

        WorkerGrpc.newBlockingStub(channel).loadShard(load().build());
        Steps steps = new Steps(channel);
        steps.send(new Step(0, List.of(), new int[] {1}, new int[] {3}, new int[] {1}, new int[] {0},
                new boolean[] {true}));
        Status status = steps.error();
        assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode());
        assertTrue(status.getDescription().contains("slot 3 holds no sequence"), status.getDescription());
        assertEquals(null, service.groupId(), "the shard is dropped");
    }

    @Test
    void aRequestThatDescribesNoStepIsAnInvalidArgumentNamingTheField() throws Exception {
        WorkerGrpc.newBlockingStub(channel).loadShard(load().build());
        Steps steps = new Steps(channel);
        steps.requests.onNext(StepRequest.newBuilder().addTokens(1).addSlots(0).addLengths(1).addLengths(1)
                .addFirstPositions(0).addSample(true).build());
        Status status = steps.error();
        assertEquals(Status.Code.INVALID_ARGUMENT, status.getCode());
        assertTrue(status.getDescription().contains("StepRequest.lengths has 2 entries where slots has 1"),
                status.getDescription());
        aLoadedShardRunsEncodedStepsToTheGoldenIds();
    }

    @Test
    void bytesThatAreNotALoadRequestGetAStatusAndTheWorkerStaysUsable() throws Exception {
        MethodDescriptor<byte[], byte[]> raw = MethodDescriptor.<byte[], byte[]>newBuilder()
                .setType(MethodDescriptor.MethodType.UNARY)
                .setFullMethodName(WorkerGrpc.getLoadShardMethod().getFullMethodName())
                .setRequestMarshaller(MalformedRequests.BYTES).setResponseMarshaller(MalformedRequests.BYTES).build();
        SplittableRandom random = new SplittableRandom(20261123L);
        for (int i = 0; i < 200; i++) {
            byte[] garbage = new byte[random.nextInt(0, 256)];
            random.nextBytes(garbage);
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> ClientCalls.blockingUnaryCall(
                    channel, raw, CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS), garbage));
            Status.Code code = e.getStatus().getCode();
            assertTrue(code == Status.Code.INVALID_ARGUMENT || code == Status.Code.FAILED_PRECONDITION,
                    "garbage " + i + " got " + e.getStatus());
        }
        aLoadedShardRunsEncodedStepsToTheGoldenIds();
    }

    /** One RunSteps stream, read a reply at a time. */
    private static final class Steps {
        private final LinkedBlockingQueue<Object> replies = new LinkedBlockingQueue<>();
        private final StreamObserver<StepRequest> requests;

        Steps(ManagedChannel channel) {
            requests = WorkerGrpc.newStub(channel).runSteps(new StreamObserver<>() {
                @Override
                public void onNext(StepResponse r) {
                    replies.add(r);
                }

                @Override
                public void onError(Throwable t) {
                    replies.add(Status.fromThrowable(t));
                }

                @Override
                public void onCompleted() {
                }
            });
        }

        /** Sent as the generated {@code StepRequest}: what the codec writes is that message's wire format. */
        void send(Step step) throws InvalidProtocolBufferException {
            requests.onNext(StepRequest.parseFrom(StepCodec.encode(step)));
        }

        StepResponse run(Step step) throws InterruptedException, InvalidProtocolBufferException {
            send(step);
            Object r = replies.poll(30, TimeUnit.SECONDS);
            if (r instanceof StepResponse s) {
                return s;
            }
            throw new AssertionError("step " + step.id() + " got " + r);
        }

        Status error() throws InterruptedException {
            Object r = replies.poll(30, TimeUnit.SECONDS);
            if (r instanceof Status s) {
                return s;
            }
            throw new AssertionError("expected an error, got " + r);
        }

        void close() {
            requests.onCompleted();
        }
    }
}
