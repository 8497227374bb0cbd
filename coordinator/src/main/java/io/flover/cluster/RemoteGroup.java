package io.flover.cluster;

import io.flover.coordinator.ServingMetrics;
import io.flover.proto.v1.StepResponse;
import io.flover.worker.GroupLostException;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.StepRunner;
import io.flover.worker.server.StepCodec;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The ranks of a tensor-parallel group of worker processes, as a step runner: every step goes to every rank over
 * its {@code RunSteps} stream, and every rank must answer it, with the same sampled ids, within the step timeout.
 * Anything else (a stream that breaks, a rank that stays silent, ranks that disagree) loses the group.
 */
final class RemoteGroup implements StepRunner {
    /** One rank's stream; replies and the stream's end arrive in {@code replies}. */
    private record Rank(String worker, ClientCallStreamObserver<byte[]> requests, LinkedBlockingQueue<Object> replies) {
    }

    private static final Object ENDED = new Object();

    /** Why a group was lost, and the rank to blame (-1 when none can be). */
    record Loss(String why, int rank) {
    }

    private final String id;
    private final List<Rank> ranks;
    private final Duration stepTimeout;
    private final Consumer<Loss> onLost;
    private final ServingMetrics metrics;
    private volatile String lost;

    private RemoteGroup(String id, Duration stepTimeout, Consumer<Loss> onLost, ServingMetrics metrics) {
        this.id = id;
        this.ranks = new ArrayList<>();
        this.stepTimeout = stepTimeout;
        this.onLost = onLost;
        this.metrics = metrics;
    }

    /**
     * Opens the step stream of every rank ({@code workers} in rank order, by name and channel). {@code onLost} hears,
     * once and from any thread, why the group was lost, even when no step was running. {@code metrics} hears each
     * step's send and wait times and what every rank spent on it.
     */
    static RemoteGroup open(String id, List<String> workers, List<ManagedChannel> channels, Duration stepTimeout,
                            Consumer<Loss> onLost, ServingMetrics metrics) {
        RemoteGroup g = new RemoteGroup(id, stepTimeout, onLost, metrics);
        for (int r = 0; r < workers.size(); r++) {
            String worker = workers.get(r);
            int rank = r;
            LinkedBlockingQueue<Object> replies = new LinkedBlockingQueue<>();
            var requests = (ClientCallStreamObserver<byte[]>) ClientCalls.asyncBidiStreamingCall(
                    channels.get(r).newCall(StepCodec.RUN_STEPS, CallOptions.DEFAULT), new StreamObserver<>() {
                        @Override
                        public void onNext(StepResponse response) {
                            replies.add(response);
                        }

                        @Override
                        public void onError(Throwable t) {
                            replies.add(t);
                            g.lose("worker " + worker + ": " + t.getMessage(), rank);
                        }

                        @Override
                        public void onCompleted() {
                            replies.add(ENDED);
                            g.lose("worker " + worker + " ended its step stream", rank);
                        }
                    });
            g.ranks.add(new Rank(worker, requests, replies));
        }
        return g;
    }

    String id() {
        return id;
    }

    @Override
    public StepResult run(Step step) {
        if (lost != null) {
            throw new GroupLostException("group " + id + " is lost: " + lost, null);
        }
        long started = System.nanoTime();
        byte[] request = StepCodec.encode(step); // once for every rank
        for (Rank r : ranks) {
            synchronized (r) {
                r.requests().onNext(request);
            }
        }
        long sent = System.nanoTime();
        metrics.phase("send", sent - started);
        long deadline = sent + stepTimeout.toNanos();
        long[] compute = new long[ranks.size()];
        long[] collective = new long[ranks.size()];
        StepResult sampled = null;
        for (int rank = 0; rank < ranks.size(); rank++) {
            Rank r = ranks.get(rank);
            Object reply;
            try {
                reply = r.replies().poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw fail("interrupted while waiting for worker " + r.worker(), -1, e);
            }
            StepResult ids = switch (reply) {
                case null -> throw fail("worker " + r.worker() + " (rank " + rank + ") did not answer step " + step.id()
                        + " within " + stepTimeout.toMillis() + " ms", rank, null);
                case StepResponse s when s.getStepId() == step.id() -> {
                    compute[rank] = s.getComputeNanos();
                    collective[rank] = s.getCollectiveNanos();
                    yield StepCodec.decode(s);
                }
                case StepResponse s -> throw fail("worker " + r.worker() + " answered step " + s.getStepId()
                        + " to step " + step.id(), rank, null);
                case Throwable t -> throw fail("worker " + r.worker() + " (rank " + rank + "): " + t.getMessage(), rank, t);
                default -> throw fail("worker " + r.worker() + " (rank " + rank + ") ended its step stream", rank, null);
            };
            if (sampled == null) {
                sampled = ids;
            } else if (!Arrays.equals(sampled.sampled(), ids.sampled())) {
                throw fail("ranks of group " + id + " sampled differently in step " + step.id() + ": "
                        + Arrays.toString(sampled.sampled()) + " and " + Arrays.toString(ids.sampled()) + " (worker "
                        + r.worker() + ")", -1,
                        null);
            }
        }
        metrics.phase("wait", System.nanoTime() - sent);
        metrics.ranks(compute, collective);
        return sampled;
    }

    /** Every failure of a remote group loses it (see {@link #run}), so there is never slot state to drop. */
    @Override
    public void reset() {
    }

    /** Ends every rank's stream; the workers drop their shards and are free for another group. */
    @Override
    public void close() {
        lost = lost == null ? "closed" : lost;
        for (Rank r : ranks) {
            synchronized (r) {
                r.requests().cancel("group " + id + " is closed", null);
            }
        }
    }

    private GroupLostException fail(String why, int rank, Throwable cause) {
        lose(why, rank);
        return new GroupLostException("group " + id + ": " + why, cause);
    }

    private void lose(String why, int rank) {
        synchronized (this) {
            if (lost != null) {
                return;
            }
            lost = why;
        }
        onLost.accept(new Loss(why, rank));
    }
}
