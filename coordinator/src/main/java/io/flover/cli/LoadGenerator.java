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
 * Sends a workload to a Generation service as streaming calls and records, on the client, when each response
 * arrived. One timer thread starts the calls at their arrival times; the calls are asynchronous, so hundreds of
 * streams in flight cost no threads. Responses are recorded on the thread that delivers them (give the channel
 * a direct executor), so a timestamp is taken as the message comes off the connection.
 */
final class LoadGenerator {
    private static final long TICK_MILLIS = 200;

    private LoadGenerator() {
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
     * which gRPC never runs concurrently for one call, and read once the run has finished.
     */
    static final class Trace implements StreamObserver<GenerateResponse> {
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
        /** Null for a request that completed; otherwise the gRPC status or FINISH_REASON_ERROR. */
        String failure;

        Trace(Workload.Request request, long origin, Consumer<Trace> onDone) {
            this.request = request;
            this.origin = origin;
            this.onDone = onDone;
            this.deliveryNanos = new long[request.maxTokens()];
            this.deliveryTokens = new int[request.maxTokens()];
        }

        @Override
        public void onNext(GenerateResponse r) {
            long now = System.nanoTime() - origin;
            if (r.hasFinished()) {
                if (r.getFinished().getReason() == FinishReason.FINISH_REASON_ERROR) {
                    failure = FinishReason.FINISH_REASON_ERROR.name();
                }
                return;
            }
            int n = r.getDelta().getTokenIdsCount();
            if (n == 0) {
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

        @Override
        public void onError(Throwable t) {
            failure = Status.fromThrowable(t).getCode().name();
            finish();
        }

        @Override
        public void onCompleted() {
            finish();
        }

        private void finish() {
            doneNanos = System.nanoTime() - origin;
            onDone.accept(this);
        }

        boolean completed() {
            return failure == null;
        }
    }

    /**
     * Sends {@code times} short requests (two tokens) with {@code first}'s prompt, one at a time, each waited for:
     * they check that the server takes the workload's requests and load the code on both sides before the clock
     * starts. A failure ends the bench.
     */
    static void warmUp(Channel channel, Workload.Request first, GenerateRequest template, int times) {
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
     * Runs the workload to the end (every call completed or failed), each request being {@code template} with the
     * workload's prompt and max_tokens, and calls {@code progress} from this thread every {@value #TICK_MILLIS} ms
     * and once at the end. The traces are in workload order.
     */
    static List<Trace> run(Channel channel, Workload workload, GenerateRequest template, Consumer<Tally> progress)
            throws InterruptedException {
        List<Workload.Request> requests = workload.requests();
        // Built before the clock starts, so the timer thread only starts calls.
        List<GenerateRequest> messages = new ArrayList<>(requests.size());
        for (Workload.Request r : requests) {
            TokenIds.Builder ids = TokenIds.newBuilder();
            for (int id : r.prompt()) {
                ids.addIds(id);
            }
            messages.add(template.toBuilder().setTokenIds(ids).setMaxTokens(r.maxTokens()).build());
        }
        GenerationGrpc.GenerationStub stub = GenerationGrpc.newStub(channel);
        AtomicInteger sent = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        CountDownLatch finished = new CountDownLatch(requests.size());
        List<Trace> traces = new ArrayList<>(requests.size());
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().name("bench-arrivals").daemon().unstarted(r));
        try {
            long origin = System.nanoTime();
            for (int i = 0; i < requests.size(); i++) {
                GenerateRequest message = messages.get(i);
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
                    stub.generate(message, trace);
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
