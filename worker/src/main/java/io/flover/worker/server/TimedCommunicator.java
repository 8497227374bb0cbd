package io.flover.worker.server;

import io.flover.collectives.Communicator;
import java.lang.foreign.MemorySegment;

/**
 * Counts the time a rank spends in collectives and the bytes it contributes to them, for step timings and metrics.
 * Used by the one thread that runs the rank.
 */
final class TimedCommunicator implements Communicator {
    private final Communicator inner;
    private long nanos;
    private long bytes;

    TimedCommunicator(Communicator inner) {
        this.inner = inner;
    }

    /** Nanoseconds spent in collectives since the last call. */
    long takeNanos() {
        long n = nanos;
        nanos = 0;
        return n;
    }

    /** Bytes of the buffers passed to collectives since the last call. */
    long takeBytes() {
        long b = bytes;
        bytes = 0;
        return b;
    }

    @Override
    public int rank() {
        return inner.rank();
    }

    @Override
    public int size() {
        return inner.size();
    }

    @Override
    public void allReduceSum(MemorySegment data) {
        long t0 = System.nanoTime();
        inner.allReduceSum(data);
        nanos += System.nanoTime() - t0;
        bytes += data.byteSize();
    }

    @Override
    public void allGather(MemorySegment send, MemorySegment recv) {
        long t0 = System.nanoTime();
        inner.allGather(send, recv);
        nanos += System.nanoTime() - t0;
        bytes += recv.byteSize();
    }

    @Override
    public void barrier() {
        long t0 = System.nanoTime();
        inner.barrier();
        nanos += System.nanoTime() - t0;
    }

    @Override
    public void close() {
        inner.close();
    }
}
