package io.flover.worker.server;

import io.flover.collectives.Communicator;

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
    public void allReduceSum(float[] data, int offset, int length) {
        long t0 = System.nanoTime();
        inner.allReduceSum(data, offset, length);
        nanos += System.nanoTime() - t0;
        bytes += (long) length * Float.BYTES;
    }

    @Override
    public void allGather(float[] send, int sendOffset, int length, float[] recv, int recvOffset) {
        long t0 = System.nanoTime();
        inner.allGather(send, sendOffset, length, recv, recvOffset);
        nanos += System.nanoTime() - t0;
        bytes += (long) length * size() * Float.BYTES;
    }

    @Override
    public void broadcast(float[] data, int offset, int length, int root) {
        long t0 = System.nanoTime();
        inner.broadcast(data, offset, length, root);
        nanos += System.nanoTime() - t0;
        bytes += (long) length * Float.BYTES;
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
