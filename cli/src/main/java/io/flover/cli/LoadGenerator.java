package io.flover.cli;

import io.flover.proto.v1.FinishReason;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.TokenIds;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * Sends a workload to a server as streaming calls, over the gRPC API or the OpenAI HTTP API ({@link Api}), and
 * records, on the client, when each response arrived. One timer thread starts the calls at their arrival times;
 * the calls are asynchronous, so hundreds of streams in flight cost no threads. Responses are recorded on the
 * thread that delivers them, so a timestamp is taken as the message comes off the connection.
 */
final class LoadGenerator {
    private static final long TICK_MILLIS = 200;

    private LoadGenerator() {
    }

    /** How a request goes to the server. */
    interface Api {
        /** Sends request {@code index} of the workload, reporting to {@code trace}; never blocks. */
        void send(int index, Trace trace);

        /** Sends {@code times} short requests with {@code first}'s prompt, one at a time; a failure ends the bench. */
        void warmUp(Workload.Request first, int times) throws Exception;
    }
    /** How far the run has got, for a progress display. */
    record Tally(int sent, int finished, int failed, long elapsedNanos) {
        /** {@code [=====>    ] 32/64 done, 5 in flight, 0 failed, 4.1 s} */
        String bar(int total) {
            int width = 30;
            int filled = (int) ((long) finished * width / total);
            String bar = "=".repeat(filled) + (filled < width ? ">" + " ".repeat(width - filled - 1) : "");
            return String.format("[%s] %d/%d done, %d in flight, %d failed, %.1f s", bar, finished, total,
                    sent - finished, failed, elapsedNanos / 1e9);
        }
    }

    /**
     * One request's record; all times are nanoseconds since the run started. Written by the call's callbacks,
     * which never run concurrently for one call, and read once the run has finished.
     */
    static final class Trace {
        final Workload.Request request;
        private final Consumer<Trace> onDone;
        private final long origin;
        long sentNanos;
        /** When each response carrying token ids arrived, and how many ids it carried. */
        long[] deliveryNanos;
        int[] deliveryTokens;
        int deliveries;
        int tokens;
        long doneNanos;
        /** Null for a request that completed; otherwise why not (a gRPC status, an HTTP status, an error event). */
        String failure;
        private boolean finished;

        Trace(Workload.Request request, long origin, Consumer<Trace> onDone) {
            this.request = request;
            this.origin = origin;
            this.onDone = onDone;
            this.deliveryNanos = new long[request.maxTokens()];
            this.deliveryTokens = new int[request.maxTokens()];
        }

        /** A response with {@code n} token ids arrived now. */
        void delivered(int n) {
            long now = System.nanoTime() - origin;
            if (n <= 0) {
                return;
            }
            if (deliveries == deliveryNanos.length) {
                deliveryNanos = Arrays.copyOf(deliveryNanos, deliveries * 2 + 1);
                deliveryTokens = Arrays.copyOf(deliveryTokens, deliveries * 2 + 1);
            }
            deliveryNanos[deliveries] = now;
            deliveryTokens[deliveries++] = n;
            tokens += n;
        }

        /** The request failed, for {@code why}; {@link #finish} still follows. */
        void fail(String why) {
            if (failure == null) {
                failure = why;
            }
        }

        /** The request ended; the first call counts, as an HTTP stream may report its end twice (error and close). */
        synchronized void finish() {
            if (finished) {
                return;
            }
            finished = true;
            doneNanos = System.nanoTime() - origin;
            onDone.accept(this);
        }

        boolean completed() {
            return failure == null;
        }
    }

    /** The gRPC API's streaming Generate (give the channel a direct executor). */
    static final class GrpcApi implements Api {
        private final GenerationGrpc.GenerationStub stub;
        private final Channel channel;
        private final GenerateRequest template;
        private final List<GenerateRequest> messages;

        /** Each request is {@code template} with the workload's prompt and max_tokens, built before the clock starts. */
        GrpcApi(Channel channel, Workload workload, GenerateRequest template) {
            this.channel = channel;
            this.stub = GenerationGrpc.newStub(channel);
            this.template = template;
            this.messages = new ArrayList<>(workload.requests().size());
            for (Workload.Request r : workload.requests()) {
                TokenIds.Builder ids = TokenIds.newBuilder();
                for (int id : r.prompt()) {
                    ids.addIds(id);
                }
                messages.add(template.toBuilder().setTokenIds(ids).setMaxTokens(r.maxTokens()).build());
            }
        }

        @Override
        public void send(int index, Trace trace) {
            stub.generate(messages.get(index), new StreamObserver<>() {
                @Override
                public void onNext(GenerateResponse r) {
                    if (r.hasFinished()) {
                        if (r.getFinished().getReason() == FinishReason.FINISH_REASON_ERROR) {
                            trace.fail(FinishReason.FINISH_REASON_ERROR.name());
                        }
                        return;
                    }
                    trace.delivered(r.getDelta().getTokenIdsCount());
                }

                @Override
                public void onError(Throwable t) {
                    trace.fail(Status.fromThrowable(t).getCode().name());
                    trace.finish();
                }

                @Override
                public void onCompleted() {
                    trace.finish();
                }
            });
        }

        @Override
        public void warmUp(Workload.Request first, int times) {
            LoadGenerator.warmUp(channel, first, template, times);
        }
    }

    /**
     * Sends {@code times} short requests (two tokens) with {@code first}'s prompt, one at a time, each waited for:
     * they check that the server takes the workload's requests and load the code on both sides before the clock
     * starts. A failure ends the bench.
     */
    private static void warmUp(Channel channel, Workload.Request first, GenerateRequest template, int times) {
        GenerateRequest request = template.toBuilder().setMaxTokens(Math.min(2, first.maxTokens()))
                .setTokenIds(TokenIds.newBuilder().addAllIds(Arrays.stream(first.prompt()).boxed().toList())).build();
        for (int i = 0; i < times; i++) {
            Iterator<GenerateResponse> stream = GenerationGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(5, TimeUnit.MINUTES).generate(request);
            while (stream.hasNext()) {
                GenerateResponse r = stream.next();
                if (r.hasFinished() && r.getFinished().getReason() == FinishReason.FINISH_REASON_ERROR) {
                    throw new IllegalStateException("the server failed a warm-up request: "
                            + r.getFinished().getError());
                }
            }
        }
    }

    /**
     * Runs the workload to the end (every call completed or failed) over {@code api}, and calls {@code progress}
     * from this thread every {@value #TICK_MILLIS} ms and once at the end. The traces are in workload order.
     */
    static List<Trace> run(Api api, Workload workload, Consumer<Tally> progress) throws InterruptedException {
        List<Workload.Request> requests = workload.requests();
        AtomicInteger sent = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        CountDownLatch finished = new CountDownLatch(requests.size());
        List<Trace> traces = new ArrayList<>(requests.size());
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().name("bench-arrivals").daemon().unstarted(r));
        try {
            long origin = System.nanoTime();
            for (int i = 0; i < requests.size(); i++) {
                int index = i;
                Trace trace = new Trace(requests.get(i), origin, t -> {
                    if (!t.completed()) {
                        failed.incrementAndGet();
                    }
                    finished.countDown();
                });
                traces.add(trace);
                // Calls due at the same time start in workload order: the timer runs ties first come, first served.
                timer.schedule(() -> {
                    trace.sentNanos = System.nanoTime() - origin;
                    sent.incrementAndGet();
                    api.send(index, trace);
                }, origin + trace.request.atNanos() - System.nanoTime(), TimeUnit.NANOSECONDS);
            }
            while (!finished.await(TICK_MILLIS, TimeUnit.MILLISECONDS)) {
                progress.accept(new Tally(sent.get(), (int) (requests.size() - finished.getCount()), failed.get(),
                        System.nanoTime() - origin));
            }
            progress.accept(new Tally(sent.get(), requests.size(), failed.get(), System.nanoTime() - origin));
        } finally {
            timer.shutdownNow();
        }
        return traces;
    }
}
