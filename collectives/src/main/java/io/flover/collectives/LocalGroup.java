package io.flover.collectives;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A group whose ranks are threads of one process (embedded mode). Ranks share memory, so nothing goes through
 * the network: every rank publishes its segments, and after a barrier each reads what it needs straight
 * from its peers' segments. An all-reduce splits the range into one slice per rank; each rank sums its slice over all ranks
 * in rank order 0..n-1 and writes the sum into every rank's array, so every element is computed exactly once and
 * the results are bitwise identical everywhere. A second barrier keeps the segments in place until all are done.
 *
 * <p>The barrier spins, then yields, then parks: a per-layer all-reduce of a small hidden state must cost about
 * a microsecond when the ranks arrive together, not the tens of microseconds of waking a parked thread.
 */
public final class LocalGroup {
    private static final long SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(10);
    private static final long YIELD_NANOS = TimeUnit.MICROSECONDS.toNanos(50);
    /** Floats summed per pass of an all-reduce slice: the partial sums stay in L1. */
    private static final int BLOCK = 2048;
    /** Slices start on 64-byte multiples, so ranks rarely write the same cache line. */
    private static final int ALIGN = 16;

    private final int size;
    private final long timeoutNanos;
    private final Rank[] ranks;
    private final Call[] calls;
    private final AtomicInteger arrived = new AtomicInteger();
    /** Bumped by the last rank to arrive at a barrier; the others wait for it to move. */
    private volatile int generation;
    private final AtomicReference<String> failure = new AtomicReference<>();

    private LocalGroup(int size, Duration timeout) {
        this.size = size;
        this.timeoutNanos = timeout.toNanos();
        this.ranks = new Rank[size];
        this.calls = new Call[size];
        for (int r = 0; r < size; r++) {
            ranks[r] = new Rank(r);
        }
    }

    /**
     * The communicators of a new group of {@code size} ranks, rank {@code r} at index {@code r}; each must be driven
     * by its own thread. A rank that has not joined an operation within {@code timeout} fails it on the others.
     */
    public static List<Communicator> create(int size, Duration timeout) {
        if (size < 1) {
            throw new IllegalArgumentException("a group needs at least one rank, got " + size);
        }
        if (size == 1) {
            return List.of(Communicator.solo());
        }
        return List.of(new LocalGroup(size, timeout).ranks);
    }

    /** What a rank asked for; the others read its segment from here between the two barriers. */
    private record Call(String op, MemorySegment data, int length) {
        boolean sameAs(Call other) {
            return op.equals(other.op) && length == other.length;
        }

        @Override
        public String toString() {
            return op.equals("barrier") ? op : op + " of " + length + " elements";
        }
    }

    private final class Rank implements Communicator {
        private final int rank;
        private final float[] sums = new float[BLOCK];
        private final float[] addends = new float[BLOCK];
        /** The thread parked in a barrier, for the last arrival to wake. */
        private volatile Thread parked;

        Rank(int rank) {
            this.rank = rank;
        }

        @Override
        public int rank() {
            return rank;
        }

        @Override
        public int size() {
            return size;
        }

        @Override
        public void allReduceSum(MemorySegment data) {
            int length = Arguments.elements(data);
            enter(new Call("allReduceSum", data, length));
            int slice = Math.ceilDiv(Math.ceilDiv(length, size), ALIGN) * ALIGN;
            int end = (int) Math.min(length, (long) (rank + 1) * slice);
            for (int start = rank * slice; start < end; start += BLOCK) {
                sumIntoAll(start, Math.min(BLOCK, end - start));
            }
            await(rank);
        }

        /** Sums {@code [start, start + n)} over the ranks in rank order and stores the sum in every rank's segment. */
        private void sumIntoAll(int start, int n) {
            long at = (long) start * Float.BYTES;
            MemorySegment.copy(calls[0].data, Arguments.FLOAT, at, sums, 0, n);
            for (int r = 1; r < size; r++) {
                MemorySegment.copy(calls[r].data, Arguments.FLOAT, at, addends, 0, n);
                for (int i = 0; i < n; i++) {
                    sums[i] += addends[i];
                }
            }
            for (Call c : calls) {
                MemorySegment.copy(sums, 0, c.data, Arguments.FLOAT, at, n);
            }
        }

        @Override
        public void allGather(MemorySegment send, MemorySegment recv) {
            int length = Arguments.gather(send, recv, size);
            enter(new Call("allGather", send, length));
            for (int r = 0; r < size; r++) {
                MemorySegment.copy(calls[r].data, 0, recv, r * send.byteSize(), send.byteSize());
            }
            await(rank);
        }

        /** Two waits like every operation, so that the calls it checks stay in place until all have read them. */
        @Override
        public void barrier() {
            enter(new Call("barrier", null, 0));
            await(rank);
        }

        @Override
        public void close() {
            fail("rank " + rank + " closed the group");
        }

        /** Publishes the call and waits for every rank's; all ranks check all calls, so all agree on a mismatch. */
        private void enter(Call call) {
            ensureUsable();
            calls[rank] = call;
            await(rank);
            for (Call other : calls) {
                if (!other.sameAs(call)) {
                    throw fail("ranks disagree on the operation: " + describeCalls());
                }
            }
        }

        private void ensureUsable() {
            String f = failure.get();
            if (f != null) {
                throw new CollectiveException("group is unusable: " + f);
            }
        }
    }

    private String describeCalls() {
        List<String> described = new ArrayList<>();
        for (int r = 0; r < size; r++) {
            described.add("rank " + r + " " + calls[r]);
        }
        return String.join(", ", described);
    }

    /** Returns once all ranks have arrived, or throws when the group fails or the timeout passes first. */
    private void await(int rank) {
        int g = generation;
        if (arrived.incrementAndGet() == size) {
            arrived.set(0);
            generation = g + 1;
            for (Rank r : ranks) {
                Thread t = r.parked;
                if (t != null) {
                    LockSupport.unpark(t);
                }
            }
            return;
        }
        Rank self = ranks[rank];
        long since = System.nanoTime();
        while (generation == g) {
            String f = failure.get();
            if (f != null) {
                throw new CollectiveException(f);
            }
            long waited = System.nanoTime() - since;
            if (waited < SPIN_NANOS) {
                Thread.onSpinWait();
            } else if (waited < YIELD_NANOS) {
                Thread.yield();
            } else if (waited >= timeoutNanos) {
                throw fail("rank " + rank + " waited " + Duration.ofNanos(timeoutNanos)
                        + " for the other ranks to reach the same operation");
            } else if (Thread.currentThread().isInterrupted()) {
                throw fail("rank " + rank + " was interrupted");
            } else {
                self.parked = Thread.currentThread();
                // Re-check after publishing the thread: the last arrival reads `parked` after bumping the generation.
                if (generation == g && failure.get() == null) {
                    LockSupport.parkNanos(this, timeoutNanos - waited);
                }
                self.parked = null;
            }
        }
    }

    /** Marks the group failed (the first reason wins) and wakes every waiting rank to see it. */
    private CollectiveException fail(String reason) {
        failure.compareAndSet(null, reason);
        for (Rank r : ranks) {
            Thread t = r.parked;
            if (t != null) {
                LockSupport.unpark(t);
            }
        }
        return new CollectiveException(failure.get());
    }
}
