package io.flover.collectives;

import java.lang.foreign.MemorySegment;

/**
 * The collective operations of one rank in a tensor-parallel group. Every rank of the group calls the same
 * operations in the same order with the same lengths; each call blocks until the group has completed it. Results
 * are bitwise identical on every rank, so ranks that go on computing from them stay in lockstep. A peer that fails
 * or does not answer within the group's timeout makes the call throw {@link CollectiveException}, never hang; after
 * that the communicator is unusable and the group must be formed again.
 *
 * <p>Operations work on memory segments of 4-byte elements, on the heap ({@code MemorySegment.ofArray}) or off it
 * (a GPU shard's pinned staging memory), so that no caller copies into a new array for them. An all-reduce sums
 * floats; an all-gather copies elements bit for bit, so ints travel as ints.
 */
public interface Communicator extends AutoCloseable {
    /** A group of one (no tensor parallelism): every operation is a local copy at most. */
    static Communicator solo() {
        return new SoloCommunicator();
    }

    int rank();

    int size();

    /** Replaces the floats of {@code data} on every rank by their element-wise sum over all ranks. */
    void allReduceSum(MemorySegment data);

    /**
     * Gathers {@code send} from every rank: rank {@code r}'s lands at byte {@code r * send.byteSize()} of
     * {@code recv}, which holds {@code size()} of them, on every rank.
     */
    void allGather(MemorySegment send, MemorySegment recv);

    /** Returns once every rank has entered it. */
    void barrier();

    /** Leaves the group; blocked and later calls on any rank fail with {@link CollectiveException}. Idempotent. */
    @Override
    void close();
}
