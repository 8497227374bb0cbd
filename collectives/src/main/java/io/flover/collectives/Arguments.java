package io.flover.collectives;

import java.util.Objects;

/** The argument checks every implementation makes before it touches a peer, so that a bad call fails alone. */
final class Arguments {
    private Arguments() {
    }

    static void range(float[] data, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, data.length);
    }

    static void gather(float[] send, int sendOffset, int length, float[] recv, int recvOffset, int size) {
        range(send, sendOffset, length);
        Objects.checkFromIndexSize(recvOffset, (long) length * size, recv.length);
    }

    static void root(int root, int size) {
        if (root < 0 || root >= size) {
            throw new IllegalArgumentException("root " + root + " is not a rank of a group of " + size);
        }
    }
}
