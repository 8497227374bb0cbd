package io.flover.collectives;

import java.lang.foreign.MemorySegment;

/** The group of one: the sum and gather of a single rank need no peer. */
final class SoloCommunicator implements Communicator {
    private volatile boolean closed;

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int size() {
        return 1;
    }

    @Override
    public void allReduceSum(MemorySegment data) {
        ensureOpen();
        Arguments.elements(data);
    }

    @Override
    public void allGather(MemorySegment send, MemorySegment recv) {
        ensureOpen();
        Arguments.gather(send, recv, 1);
        recv.copyFrom(send);
    }

    @Override
    public void barrier() {
        ensureOpen();
    }

    @Override
    public void close() {
        closed = true;
    }

    private void ensureOpen() {
        if (closed) {
            throw new CollectiveException("communicator is closed");
        }
    }
}
