package io.flover.collectives;

/** The group of one: the sum, gather and broadcast of a single rank need no peer. */
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
    public void allReduceSum(float[] data, int offset, int length) {
        ensureOpen();
        Arguments.range(data, offset, length);
    }

    @Override
    public void allGather(float[] send, int sendOffset, int length, float[] recv, int recvOffset) {
        ensureOpen();
        Arguments.gather(send, sendOffset, length, recv, recvOffset, 1);
        System.arraycopy(send, sendOffset, recv, recvOffset, length);
    }

    @Override
    public void broadcast(float[] data, int offset, int length, int root) {
        ensureOpen();
        Arguments.range(data, offset, length);
        Arguments.root(root, 1);
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
