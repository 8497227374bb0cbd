package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;
import java.lang.foreign.MemorySegment;

/**
 * The group's collectives over device buffers and host arrays. A device buffer is summed where the backend shows
 * it to the host ({@link Backend#hostSegment}: its own storage on the CPU, pinned memory on a GPU), so no call
 * makes a heap array.
 */
final class ShardCollectives {
    private final Backend k;
    private final Communicator comm;

    ShardCollectives(Backend backend, Communicator comm) {
        this.k = backend;
        this.comm = comm;
    }

    int rank() {
        return comm.rank();
    }

    int size() {
        return comm.size();
    }

    /** Sums the first {@code n} floats of {@code b} over the group, in place; nothing to do in a group of one. */
    void allReduceSum(Backend.Buffer b, int n) {
        if (comm.size() > 1) {
            MemorySegment host = k.hostSegment(b, n);
            comm.allReduceSum(host);
            k.fromHost(host, b, n);
        }
    }

    /** Every rank's {@code local}, rank after rank. */
    float[] allGather(float[] local) {
        float[] gathered = new float[comm.size() * local.length];
        comm.allGather(MemorySegment.ofArray(local), MemorySegment.ofArray(gathered));
        return gathered;
    }

    /** Every rank's {@code local}, rank after rank. */
    int[] allGather(int[] local) {
        int[] gathered = new int[comm.size() * local.length];
        comm.allGather(MemorySegment.ofArray(local), MemorySegment.ofArray(gathered));
        return gathered;
    }
}
