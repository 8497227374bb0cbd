package io.flover.collectives;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The argument checks every implementation makes before it touches a peer, so that a bad call fails alone. */
final class Arguments {
    /** How collectives read and write a float of a caller's segment, which may be any memory. */
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Arguments() {
    }

    /** The 4-byte elements of a segment a collective writes. */
    static int elements(MemorySegment data) {
        if (data.byteSize() % Float.BYTES != 0) {
            throw new IllegalArgumentException("collectives move 4-byte elements; got " + data.byteSize() + " bytes");
        }
        if (data.isReadOnly()) {
            throw new IllegalArgumentException("a collective cannot write a read-only segment");
        }
        return Math.toIntExact(data.byteSize() / Float.BYTES);
    }

    /** The elements each rank sends to an all-gather. */
    static int gather(MemorySegment send, MemorySegment recv, int size) {
        if (send.byteSize() % Float.BYTES != 0) {
            throw new IllegalArgumentException("collectives move 4-byte elements; got " + send.byteSize() + " bytes");
        }
        if (recv.byteSize() != size * send.byteSize()) {
            throw new IllegalArgumentException("an all-gather of " + send.byteSize() + " bytes per rank over " + size
                    + " ranks needs " + size * send.byteSize() + " bytes to receive them, not " + recv.byteSize());
        }
        return elements(recv) / size;
    }
}
