package io.flover.collectives;

/**
 * The collective operations of one rank in a tensor-parallel group. Every rank of the group calls the same
 * operations in the same order with the same lengths; each call blocks until the group has completed it. Results
 * are bitwise identical on every rank, so ranks that go on computing from them stay in lockstep. A peer that fails
 * or does not answer within the group's timeout makes the call throw {@link CollectiveException}, never hang; after
 * that the communicator is unusable and the group must be formed again.
 */
public interface Communicator extends AutoCloseable {
    /** A group of one (no tensor parallelism): every operation is a local copy at most. */
    static Communicator solo() {
        return new SoloCommunicator();
    }

    int rank();

    int size();

    /** Replaces {@code data[offset, offset + length)} on every rank by the element-wise sum over all ranks. */
    void allReduceSum(float[] data, int offset, int length);

    /**
     * Gathers {@code length} floats from every rank: rank {@code r}'s {@code send[sendOffset, sendOffset + length)}
     * lands in {@code recv[recvOffset + r * length, recvOffset + (r + 1) * length)} on every rank.
     */
    void allGather(float[] send, int sendOffset, int length, float[] recv, int recvOffset);

    /** Copies {@code data[offset, offset + length)} of rank {@code root} into the same range on every other rank. */
    void broadcast(float[] data, int offset, int length, int root);

    /** Returns once every rank has entered it. */
    void barrier();

    /** Leaves the group; blocked and later calls on any rank fail with {@link CollectiveException}. Idempotent. */
    @Override
    void close();
}
