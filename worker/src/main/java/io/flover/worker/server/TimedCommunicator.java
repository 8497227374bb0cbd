package io.flover.worker.server;

import io.flover.collectives.Communicator;

/** Counts the time a rank spends in collectives, for step timings. Used by the one thread that runs the rank. */
final class TimedCommunicator implements Communicator {
    private final Communicator inner;
    private long nanos;

    TimedCommunicator(Communicator inner) {
        this.inner = inner;
    }

    /** Nanoseconds spent in collectives since the last call. */
    long takeNanos() {
        long n = nanos;
        nanos = 0;
        return n;
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
    }

    @Override
    public void allGather(float[] send, int sendOffset, int length, float[] recv, int recvOffset) {
        long t0 = System.nanoTime();
        inner.allGather(send, sendOffset, length, recv, recvOffset);
        nanos += System.nanoTime() - t0;
    }

    @Override
    public void broadcast(float[] data, int offset, int length, int root) {
        long t0 = System.nanoTime();
        inner.broadcast(data, offset, length, root);
        nanos += System.nanoTime() - t0;
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
