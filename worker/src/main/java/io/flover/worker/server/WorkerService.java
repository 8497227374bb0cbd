package io.flover.worker.server;

import io.flover.collectives.CollectiveException;
import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;
import io.flover.kernels.cuda.CudaUnavailableException;
import io.flover.proto.v1.LoadShardRequest;
import io.flover.proto.v1.LoadShardResponse;
import io.flover.proto.v1.StepResponse;
import io.flover.proto.v1.WorkerGrpc;
import io.flover.worker.KvMemory;
import io.flover.worker.LoadedModel;
import io.flover.worker.ShardExecutor;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.grpc.BindableService;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The worker side of {@code flover.v1.Worker}: holds at most one shard (a rank's slice of a model, its KV cache and
 * its group's collectives) and runs the steps the coordinator streams to it. Steps arrive as their bytes
 * ({@link StepCodec#RUN_STEPS}) and are decoded here, once, so that a malformed one is answered with a status
 * naming its field.
 */
public final class WorkerService implements BindableService {
    private static final Logger LOG = Logger.getLogger(WorkerService.class.getName());

    /** Connects this worker to the other ranks of a group. */
    @FunctionalInterface
    public interface Collectives {
        Communicator join(String groupId, int rank, List<InetSocketAddress> peers, Duration timeout);
    }

    /**
     * A loaded shard. Steps run under {@code running}, so dropping it never unmaps weights under a forward. It is
     * dropped once, by whichever thread comes first (a step stream that ends, a new load, the worker's close); the
     * others wait until its memory is free, so a new shard never sizes its KV cache beside the old one's.
     */
    private record Shard(String groupId, int rank, TimedCommunicator comm, Backend backend, LoadedModel model,
                         ShardExecutor executor, ReentrantLock running, AtomicBoolean dropping,
                         CompletableFuture<Void> released) {
        Shard(String groupId, int rank, TimedCommunicator comm, Backend backend, LoadedModel model,
              ShardExecutor executor) {
            this(groupId, rank, comm, backend, model, executor, new ReentrantLock(), new AtomicBoolean(),
                    new CompletableFuture<>());
        }

        void drop() {
            if (!dropping.compareAndSet(false, true)) {
                released.join();
                return;
            }
            try {
                comm.close(); // first: a step blocked in a collective fails at once and releases the lock
                running.lock();
                try {
                    executor.close();
                    model.close();
                } finally {
                    try {
                        backend.close();
                    } finally {
                        running.unlock();
                    }
                }
            } finally {
                released.complete(null);
            }
        }
    }

    private final Supplier<Backend> backends;
    private final KvMemory kvMemory;
    private final Collectives collectives;
    private final Object loading = new Object();
    private volatile Shard shard;
    /** The shard loaded last, dropped or not: a new load waits until it is released. Guarded by {@code loading}. */
    private Shard last;
    private final Timer stepCompute;
    private final Timer stepCollectives;
    private final Counter collectiveBytes;

    /**
     * Loads each shard on a backend of its own from {@code backends}, closed with the shard, with a KV cache of
     * {@code kvMemory}; records step timings, collective traffic and KV blocks held in {@code metrics}.
     */
    public WorkerService(Supplier<Backend> backends, KvMemory kvMemory, Collectives collectives, MeterRegistry metrics) {
        this.backends = backends;
        this.kvMemory = kvMemory;
        this.collectives = collectives;
        this.stepCompute = Timer.builder("flover.worker.step.compute").description("Time a step takes on this rank")
                .publishPercentileHistogram().register(metrics);
        this.stepCollectives = Timer.builder("flover.worker.step.collective")
                .description("Time a step spends in collectives (all-reduce, all-gather) on this rank")
                .publishPercentileHistogram().register(metrics);
        this.collectiveBytes = Counter.builder("flover.worker.collective.bytes").baseUnit("bytes")
                .description("Bytes this rank passes to collectives").register(metrics);
        Gauge.builder("flover.worker.kv.blocks.held", this, w -> {
            Shard s = w.shard;
            return s == null ? 0 : s.executor().blocksHeld();
        }).description("KV blocks held by this rank's live sequences").register(metrics);
    }

    /** The group of the loaded shard, or null. */
    public String groupId() {
        Shard s = shard;
        return s == null ? null : s.groupId();
    }

    @Override
    public ServerServiceDefinition bindService() {
        return ServerServiceDefinition.builder(WorkerGrpc.SERVICE_NAME)
                .addMethod(WorkerGrpc.getLoadShardMethod(), ServerCalls.asyncUnaryCall(this::loadShard))
                .addMethod(StepCodec.RUN_STEPS, ServerCalls.asyncBidiStreamingCall(this::runSteps))
                .build();
    }

    void loadShard(LoadShardRequest request, StreamObserver<LoadShardResponse> responses) {
        try {
            responses.onNext(load(request));
            responses.onCompleted();
        } catch (StatusRuntimeException e) {
            responses.onError(e);
        }
    }

    private LoadShardResponse load(LoadShardRequest r) {
        require(!r.getModelDir().isEmpty(), "model_dir is empty");
        require(r.getWorldSize() >= 1, "world_size must be at least 1");
        require(r.getRank() < r.getWorldSize(), "rank " + r.getRank() + " is not below world_size " + r.getWorldSize());
        require(r.getPeerAddressesCount() == r.getWorldSize(), "peer_addresses has " + r.getPeerAddressesCount()
                + " entries for a world_size of " + r.getWorldSize());
        require(r.getBlockSize() >= 1, "block_size must be at least 1");
        require(r.getMaxSlots() >= 1, "max_slots must be at least 1");
        require(r.getCollectiveTimeoutMs() >= 1, "collective_timeout_ms must be at least 1");
        List<InetSocketAddress> peers = new ArrayList<>();
        for (String a : r.getPeerAddressesList()) {
            peers.add(parseAddress(a));
        }
        synchronized (loading) {
            try {
                drop(shard);
                if (last != null) {
                    last.drop(); // returns once it is released, if a step stream's end is dropping it now
                }
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "dropping the previous shard failed", e);
            }
            TimedCommunicator comm = null;
            Backend backend = null;
            LoadedModel model = null;
            try {
                comm = new TimedCommunicator(collectives.join(r.getGroupId(), r.getRank(), peers,
                        Duration.ofMillis(r.getCollectiveTimeoutMs())));
                backend = backends.get();
                model = LoadedModel.open(Path.of(r.getModelDir()), backend, comm);
                long perBlock = model.lm().shard().kvBytesPerBlock(model.config(), r.getBlockSize());
                int blocks;
                try {
                    blocks = kvMemory.blocks(backend, perBlock);
                } catch (IllegalArgumentException e) {
                    throw Status.FAILED_PRECONDITION.withDescription("this worker's KV memory: " + e.getMessage())
                            .asRuntimeException();
                }
                ShardExecutor executor = new ShardExecutor(model.lm(), blocks, r.getBlockSize(), r.getMaxSlots());
                Shard loaded = new Shard(r.getGroupId(), r.getRank(), comm, backend, model, executor);
                synchronized (this) {
                    shard = loaded;
                }
                last = loaded;
                LOG.info(() -> "loaded rank " + r.getRank() + " of " + r.getWorldSize() + " of " + r.getModelDir()
                        + " for group " + r.getGroupId() + " with " + blocks + " KV blocks");
                return LoadShardResponse.newBuilder().setWeightBytes(model.weightBytes() / r.getWorldSize())
                        .setKvCacheBytes(blocks * perBlock).setNumKvBlocks(blocks).build();
            } catch (NoSuchFileException e) {
                close(comm, model, backend);
                throw Status.FAILED_PRECONDITION.withDescription("model_dir: no such file " + e.getMessage())
                        .asRuntimeException();
            } catch (IOException | IllegalArgumentException e) {
                close(comm, model, backend);
                throw Status.FAILED_PRECONDITION.withDescription("model_dir " + r.getModelDir() + ": " + e.getMessage())
                        .asRuntimeException();
            } catch (CollectiveException e) {
                close(comm, model, backend);
                throw Status.UNAVAILABLE.withDescription("peers of group " + r.getGroupId() + ": " + e.getMessage())
                        .asRuntimeException();
            } catch (CudaUnavailableException e) {
                close(comm, model, backend);
                throw Status.FAILED_PRECONDITION.withDescription(e.getMessage()).asRuntimeException();
            } catch (StatusRuntimeException e) {
                close(comm, model, backend);
                throw e;
            } catch (RuntimeException e) {
                // E.g. the device's memory ran out while the weights went up: say so rather than UNKNOWN.
                close(comm, model, backend);
                throw Status.INTERNAL.withDescription("loading rank " + r.getRank() + " of " + r.getModelDir() + ": "
                        + e).withCause(e).asRuntimeException();
            }
        }
    }

    private StreamObserver<byte[]> runSteps(StreamObserver<StepResponse> responses) {
        Shard s = shard;
        if (s == null) {
            responses.onError(Status.FAILED_PRECONDITION.withDescription("no shard is loaded").asRuntimeException());
            return new Ignoring();
        }
        return new StreamObserver<>() {
            private boolean failed;

            @Override
            public void onNext(byte[] request) {
                if (failed) {
                    return;
                }
                StepResponse response;
                Step step = null;
                s.running().lock();
                try {
                    step = StepCodec.decode(request);
                    if (shard != s) {
                        throw Status.ABORTED.withDescription("the shard of group " + s.groupId() + " was dropped")
                                .asRuntimeException();
                    }
                    long t0 = System.nanoTime();
                    StepResult result = s.executor().run(step);
                    long compute = System.nanoTime() - t0;
                    long collective = s.comm().takeNanos();
                    stepCompute.record(compute, TimeUnit.NANOSECONDS);
                    stepCollectives.record(collective, TimeUnit.NANOSECONDS);
                    collectiveBytes.increment(s.comm().takeBytes());
                    response = StepCodec.encode(result).setStepId(step.id()).setComputeNanos(compute)
                            .setCollectiveNanos(collective).build();
                } catch (RuntimeException e) {
                    failed = true;
                    s.running().unlock();
                    String which = step == null ? "a step that could not be decoded" : "step " + step.id();
                    LOG.log(Level.WARNING, which + " of group " + s.groupId() + " failed", e);
                    try {
                        drop(s);
                    } catch (RuntimeException dropFailed) {
                        LOG.log(Level.WARNING, "dropping the shard of group " + s.groupId() + " failed", dropFailed);
                    }
                    responses.onError(status(e).asRuntimeException());
                    return;
                }
                s.running().unlock();
                responses.onNext(response);
            }

            @Override
            public void onError(Throwable t) {
                LOG.fine(() -> "step stream of group " + s.groupId() + " ended: " + t);
                drop(s);
            }

            @Override
            public void onCompleted() {
                drop(s);
                responses.onCompleted();
            }
        };
    }

    /** Waits up to {@code timeout} for the coordinator to end the loaded shard's step stream; true once none is loaded. */
    public boolean awaitDropped(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (shard != null && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        return shard == null;
    }

    /** Drops the loaded shard; the worker is free for another group. */
    public void close() {
        drop(shard);
    }

    private void drop(Shard s) {
        if (s == null) {
            return;
        }
        synchronized (this) {
            if (shard == s) {
                shard = null;
            } else if (shard != null) {
                return; // already replaced, and dropped by whoever replaced it
            }
        }
        s.drop();
        LOG.info(() -> "dropped rank " + s.rank() + " of group " + s.groupId());
    }

    private static Status status(RuntimeException e) {
        if (e instanceof StatusRuntimeException s) {
            return s.getStatus();
        }
        Status base = e instanceof CollectiveException ? Status.UNAVAILABLE
                : e instanceof IllegalArgumentException || e instanceof IllegalStateException ? Status.INVALID_ARGUMENT
                : Status.INTERNAL;
        return base.withDescription(e.getMessage());
    }

    private static void close(Communicator comm, LoadedModel model, Backend backend) {
        if (model != null) {
            model.close();
        }
        if (backend != null) {
            backend.close();
        }
        if (comm != null) {
            comm.close();
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw Status.INVALID_ARGUMENT.withDescription(message).asRuntimeException();
        }
    }

    /** {@code host:port}, as the coordinator sends them. */
    static InetSocketAddress parseAddress(String a) {
        int colon = a.lastIndexOf(':');
        try {
            if (colon > 0) {
                return new InetSocketAddress(a.substring(0, colon), Integer.parseInt(a.substring(colon + 1)));
            }
        } catch (IllegalArgumentException e) {
            // fall through to the same message
        }
        throw Status.INVALID_ARGUMENT.withDescription("peer_addresses: '" + a + "' is not host:port").asRuntimeException();
    }

    private static final class Ignoring implements StreamObserver<byte[]> {
        @Override
        public void onNext(byte[] value) {
        }

        @Override
        public void onError(Throwable t) {
        }

        @Override
        public void onCompleted() {
        }
    }
}
