package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;

/** The group's collectives over device buffers: through host memory, which is where the communicator works. */
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
            float[] host = k.toHost(b, n);
            comm.allReduceSum(host, 0, n);
            k.fromHost(host, b, n);
        }
    }

    /** Every rank's {@code local[0..n)}, rank after rank. */
    float[] allGather(float[] local, int n) {
        float[] gathered = new float[comm.size() * n];
        comm.allGather(local, 0, n, gathered, 0);
        return gathered;
    }
}
