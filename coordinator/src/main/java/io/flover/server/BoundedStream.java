package io.flover.server;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BinaryOperator;

/**
 * One client stream's outbound buffer, bounded. Messages go straight to the transport while it is ready and wait
 * here while it is not; once {@code capacity} wait, each new one is merged into the last (token deltas
 * concatenate), so a slow client holds at most its own request's output and never blocks the writer. A client
 * that lets the buffer fill and then reads nothing for the stall timeout is given up: {@code onStall} runs once
 * (cancel the request, end the stream with a status that says why) and the buffer is dropped. Any transport with
 * a readiness signal fits: gRPC's {@code isReady}/{@code onReady}, or an HTTP response that is ready while no write
 * is in flight and calls {@link #drain} when one completes.
 */
public final class BoundedStream<T> {
    /** Where the messages go. {@link #write} must not block; {@link #ready} says whether it would buffer. */
    public interface Transport<T> {
        boolean ready();

        void write(T message);
    }

    private static final ScheduledExecutorService TIMER = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().name("flover-stream-stalls").daemon().unstarted(r));

    private final Transport<T> transport;
    private final int capacity;
    private final long stallNanos;
    private final BinaryOperator<T> merge;
    private final Runnable onStall;
    private final ArrayDeque<T> waiting = new ArrayDeque<>();
    /** When the buffer last became full ({@link System#nanoTime}); -1 while it is not. */
    private long fullSince = -1;
    private ScheduledFuture<?> stallCheck;
    /** What ends the stream, once the messages before it are written; null until {@link #end}. */
    private Runnable last;
    private boolean done;

    public BoundedStream(Transport<T> transport, int capacity, Duration stallTimeout, BinaryOperator<T> merge,
                         Runnable onStall) {
        if (capacity < 1 || !stallTimeout.isPositive()) {
            throw new IllegalArgumentException("a stream buffer needs room for a message and a positive stall timeout");
        }
        this.transport = transport;
        this.capacity = capacity;
        this.stallNanos = stallTimeout.toNanos();
        this.merge = merge;
        this.onStall = onStall;
    }

    /** Writes {@code message} now if the transport is ready and nothing waits; else buffers it. */
    public synchronized void send(T message) {
        if (done || last != null) {
            return;
        }
        if (waiting.isEmpty() && transport.ready()) {
            transport.write(message);
            return;
        }
        if (waiting.size() < capacity) {
            waiting.addLast(message);
        } else {
            waiting.addLast(merge.apply(waiting.pollLast(), message));
        }
        if (waiting.size() == capacity && fullSince < 0) {
            fullSince = System.nanoTime();
            stallCheck = TIMER.schedule(this::checkStall, stallNanos, TimeUnit.NANOSECONDS);
        }
    }

    /**
     * Ends the stream with {@code last} (e.g. the final message and the close) once what waits is written and the
     * transport is ready, so {@code last} may write too.
     */
    public synchronized void end(Runnable last) {
        if (done || this.last != null) {
            return;
        }
        this.last = last;
        drain();
    }

    /** The transport became ready again (gRPC's onReady): writes what waits for as long as it stays ready. */
    public synchronized void drain() {
        while (!done && !waiting.isEmpty() && transport.ready()) {
            transport.write(waiting.pollFirst());
        }
        if (waiting.size() < capacity && stallCheck != null) {
            stallCheck.cancel(false); // the client reads: the stall clock starts again when the buffer next fills
            stallCheck = null;
            fullSince = -1;
        }
        if (!done && waiting.isEmpty() && last != null && transport.ready()) {
            done = true;
            last.run();
        }
    }

    /** Messages waiting for the client. */
    public synchronized int buffered() {
        return waiting.size();
    }

    private void checkStall() {
        synchronized (this) {
            if (done || fullSince < 0) {
                return;
            }
            long left = stallNanos - (System.nanoTime() - fullSince);
            if (left > 0) {
                stallCheck = TIMER.schedule(this::checkStall, left, TimeUnit.NANOSECONDS);
                return;
            }
            done = true;
            waiting.clear();
            stallCheck = null;
        }
        onStall.run();
    }
}
