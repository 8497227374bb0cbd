package io.flover.kernels.cpu;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A fixed team of {@code size} participants for fork-join loops whose tasks take tens to hundreds of
 * microseconds: the calling thread plus {@code size - 1} daemon helpers. Chunks of a loop are handed out
 * dynamically, so a helper that is late (parked, preempted) costs little. Helpers keep polling for a while after
 * each loop, so back-to-back loops (the matmuls of a decode step) start within a microsecond or so; then they
 * park until the next loop wakes them.
 *
 * <p>Not reentrant and not thread-safe: one thread at a time may call {@link #forEach}, and a task must not
 * call back into the pool.
 */
final class WorkerPool implements AutoCloseable {
    /** One unit of a loop; {@code worker} in {@code [0, size)} identifies the participant (0 is the caller). */
    @FunctionalInterface
    interface Task {
        void run(int worker, int chunk);
    }

    /**
     * How long an idle thread keeps polling before it parks: covers the gaps between the kernels of a forward
     * pass and between decode steps, so that waking a parked helper (tens of microseconds) is rare.
     */
    private static final long SPIN_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /** How long an idle thread spins before it polls with yields instead. */
    private static final long YIELD_AFTER_NANOS = TimeUnit.MICROSECONDS.toNanos(10);

    private final Helper[] helpers;
    private final ReentrantLock turn = new ReentrantLock();
    private final AtomicInteger nextChunk = new AtomicInteger();
    private final AtomicInteger running = new AtomicInteger();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    /** Bumped (volatile write) to publish a loop; helpers wait for it to move past the value they last saw. */
    private volatile int generation;
    private volatile boolean closed;
    private volatile Thread waitingCaller;
    private Task task;
    private int chunks;

    WorkerPool(int size, String name) {
        helpers = new Helper[size - 1];
        for (int i = 0; i < helpers.length; i++) {
            helpers[i] = new Helper(i + 1);
            helpers[i].thread = Thread.ofPlatform().daemon().name(name + "-" + (i + 1)).unstarted(helpers[i]);
        }
        for (Helper h : helpers) {
            h.thread.start();
        }
    }

    /**
     * Runs {@code task} for every chunk in {@code [0, chunks)}, spread dynamically over the participants, and
     * returns once all have finished. The first exception a task throws is rethrown here, after the loop has
     * drained; the pool stays usable.
     */
    void forEach(int chunks, Task task) {
        if (closed) {
            throw new IllegalStateException("kernels are closed");
        }
        // Callers on several threads (e.g. two schedulers over one model) take turns: the pool runs one loop at a
        // time, serial ones too, since their tasks use participant 0's scratch.
        turn.lock();
        try {
            if (chunks <= 1 || helpers.length == 0) {
                for (int c = 0; c < chunks; c++) {
                    task.run(0, c);
                }
            } else {
                runLoop(chunks, task);
            }
        } finally {
            turn.unlock();
        }
    }

    private void runLoop(int chunks, Task task) {
        this.task = task;
        this.chunks = chunks;
        nextChunk.set(0);
        running.set(helpers.length);
        generation++;
        for (Helper h : helpers) {
            if (h.parked) {
                LockSupport.unpark(h.thread);
            }
        }
        work(0);
        awaitHelpers();
        this.task = null;
        Throwable t = failure.getAndSet(null);
        if (t instanceof RuntimeException e) {
            throw e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        if (t != null) {
            throw new IllegalStateException("parallel task failed", t); // a checked exception thrown sneakily
        }
    }

    private void work(int worker) {
        try {
            for (int c; (c = nextChunk.getAndIncrement()) < chunks; ) {
                task.run(worker, c);
            }
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
            // Skip the chunks nobody has started: the loop has failed anyway.
            nextChunk.set(chunks);
        }
    }

    private void awaitHelpers() {
        long since = System.nanoTime();
        while (running.get() != 0) {
            if (poll(since)) {
                continue;
            }
            waitingCaller = Thread.currentThread();
            // Re-check after publishing ourselves: the last helper reads waitingCaller after its decrement.
            while (running.get() != 0) {
                LockSupport.park(this);
            }
            waitingCaller = null;
        }
    }

    /**
     * One step of an idle thread's polling that began at {@code since}; false once it is time to park. After a
     * short spin it yields instead: the scheduler sometimes queues a woken helper on the CPU of the thread that
     * woke it, and then the two must take turns rather than one spinning through the other's time slice.
     */
    private static boolean poll(long since) {
        long waited = System.nanoTime() - since;
        if (waited < YIELD_AFTER_NANOS) {
            Thread.onSpinWait();
            return true;
        }
        if (waited < SPIN_NANOS) {
            Thread.yield();
            return true;
        }
        return false;
    }

    /** The helper threads, for tests. */
    List<Thread> helperThreads() {
        return Arrays.stream(helpers).map(h -> h.thread).toList();
    }

    /** Stops and joins the helpers; idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        generation++;
        for (Helper h : helpers) {
            LockSupport.unpark(h.thread);
        }
        boolean interrupted = false;
        for (Helper h : helpers) {
            while (true) {
                try {
                    h.thread.join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private final class Helper implements Runnable {
        private final int index;
        private Thread thread;
        private volatile boolean parked;

        Helper(int index) {
            this.index = index;
        }

        @Override
        public void run() {
            int seen = 0;
            while (true) {
                seen = awaitGeneration(seen);
                if (closed) {
                    return;
                }
                work(index);
                if (running.decrementAndGet() == 0) {
                    Thread caller = waitingCaller;
                    if (caller != null) {
                        LockSupport.unpark(caller);
                    }
                }
            }
        }

        private int awaitGeneration(int seen) {
            long since = System.nanoTime();
            int g;
            while ((g = generation) == seen) {
                if (poll(since)) {
                    continue;
                }
                parked = true;
                // Re-check after announcing the park: forEach reads `parked` after bumping the generation.
                while ((g = generation) == seen) {
                    LockSupport.park(this);
                }
                parked = false;
            }
            return g;
        }
    }
}
