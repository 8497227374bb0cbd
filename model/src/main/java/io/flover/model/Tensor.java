package io.flover.model;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A named, row-major tensor whose elements live in a {@link MemorySegment}: usually a slice of a
 * memory-mapped checkpoint file, so weights are never copied onto the Java heap.
 */
public record Tensor(String name, DType dtype, long[] shape, MemorySegment data) {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public Tensor {
        shape = shape.clone();
        long expected = numElements(shape) * dtype.bytes();
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor " + name + ": " + data.byteSize() + " bytes for shape "
                    + Arrays.toString(shape) + " of " + dtype + " (expected " + expected + ")");
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long numElements() {
        return numElements(shape);
    }

    /** Rows of a 2-D tensor (the first dimension). */
    public int rows() {
        requireRank(2);
        return Math.toIntExact(shape[0]);
    }

    /** Columns of a 2-D tensor (the last dimension). */
    public int cols() {
        requireRank(2);
        return Math.toIntExact(shape[1]);
    }

    /** Element {@code i} of the flattened tensor, widened to float. */
    public float get(long i) {
        return switch (dtype) {
            case F32 -> data.getAtIndex(F32, i);
            case BF16 -> Float.intBitsToFloat((data.getAtIndex(U16, i) & 0xFFFF) << 16);
            case F16 -> Float.float16ToFloat(data.getAtIndex(U16, i));
        };
    }

    /** Copies {@code count} elements starting at flat index {@code from} into {@code out[offset..]}, widened to float. */
    public void copyTo(long from, float[] out, int offset, int count) {
        if (dtype == DType.F32) {
            MemorySegment.copy(data, F32, from * 4, out, offset, count);
            return;
        }
        for (int i = 0; i < count; i++) {
            out[offset + i] = get(from + i);
        }
    }

    /** The whole tensor as a new float array; meant for small tensors such as norms and biases. */
    public float[] toFloatArray() {
        return toFloatArray(0, numElements());
    }

    /** Elements {@code [from, from + count)} of the flattened tensor as a new float array. */
    public float[] toFloatArray(long from, long count) {
        float[] out = new float[Math.toIntExact(count)];
        copyTo(from, out, 0, out.length);
        return out;
    }

    /** Rows {@code [from, from + count)} of a 2-D tensor, sharing this tensor's memory. */
    public Tensor rowRange(long from, long count) {
        long rowBytes = (long) cols() * dtype.bytes();
        return new Tensor(name, dtype, new long[] {count, cols()}, data.asSlice(from * rowBytes, count * rowBytes));
    }

    /**
     * Columns {@code [from, from + count)} of a 2-D tensor, copied into {@code arena} (they are strided in this
     * one): only those bytes of a memory-mapped tensor are read.
     */
    public Tensor columnRange(long from, long count, Arena arena) {
        int size = dtype.bytes();
        long rowBytes = (long) cols() * size;
        long sliceBytes = count * size;
        MemorySegment copy = arena.allocate(rows() * sliceBytes, 64);
        for (long r = 0; r < rows(); r++) {
            MemorySegment.copy(data, r * rowBytes + from * size, copy, r * sliceBytes, sliceBytes);
        }
        return new Tensor(name, dtype, new long[] {rows(), count}, copy);
    }

    /** Fails with a message naming this tensor unless its shape is exactly {@code expected}. */
    public Tensor requireShape(long... expected) {
        if (!Arrays.equals(shape, expected)) {
            throw new IllegalArgumentException("tensor " + name + " has shape " + Arrays.toString(shape)
                    + ", expected " + Arrays.toString(expected));
        }
        return this;
    }

    private void requireRank(int r) {
        if (shape.length != r) {
            throw new IllegalStateException("tensor " + name + " has rank " + shape.length + ", expected " + r);
        }
    }

    static long numElements(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }
}
