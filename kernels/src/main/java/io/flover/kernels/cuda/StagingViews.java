package io.flover.kernels.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;

/**
 * The pinned host buffer that copies to and from the device pass through, read and written only through views of
 * absolute byte ranges: no user of it leaves a position behind for the next one to read or write from.
 */
final class StagingViews {
    private final ByteBuffer bytes;

    StagingViews(ByteBuffer bytes) {
        this.bytes = bytes;
    }

    /** {@code count} ints from byte {@code offset}. */
    IntBuffer ints(long offset, int count) {
        return view(offset, (long) count * Integer.BYTES).asIntBuffer();
    }

    /** {@code count} floats from byte {@code offset}. */
    FloatBuffer floats(long offset, int count) {
        return view(offset, (long) count * Float.BYTES).asFloatBuffer();
    }

    private ByteBuffer view(long offset, long length) {
        return bytes.slice(Math.toIntExact(offset), Math.toIntExact(length)).order(ByteOrder.nativeOrder());
    }
}
