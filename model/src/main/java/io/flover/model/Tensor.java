package io.flover.model;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A named, row-major tensor whose elements live in a {@link MemorySegment}: usually a slice of a
 * memory-mapped checkpoint file, so weights are never copied onto the Java heap. Rows of a block-quantized tensor
 * are whole blocks; reading elements dequantises the blocks that hold them.
 */
public record Tensor(String name, DType dtype, long[] shape, MemorySegment data) {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public Tensor {
        shape = shape.clone();
        if (shape.length > 0 && shape[shape.length - 1] % dtype.blockSize() != 0) {
            throw new IllegalArgumentException("tensor " + name + ": rows of " + shape[shape.length - 1]
                    + " elements are not whole " + dtype + " blocks of " + dtype.blockSize());
        }
        long expected = dtype.bytes(numElements(shape));
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
            default -> toFloatArray(i, 1)[0];
        };
    }

    /** Copies {@code count} elements starting at flat index {@code from} into {@code out[offset..]}, widened to float. */
    public void copyTo(long from, float[] out, int offset, int count) {
        if (dtype == DType.F32) {
            MemorySegment.copy(data, F32, from * 4, out, offset, count);
            return;
        }
        if (!dtype.quantized()) {
            for (int i = 0; i < count; i++) {
                out[offset + i] = get(from + i);
            }
            return;
        }
        int size = dtype.blockSize();
        long first = from / size;
        long end = Math.ceilDiv(from + count, size);
        float[] blocks = new float[Math.toIntExact((end - first) * size)];
        dtype.dequantize(data, first * dtype.blockBytes(), (int) (end - first), blocks, 0);
        System.arraycopy(blocks, (int) (from - first * size), out, offset, count);
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
        long rowBytes = dtype.bytes(cols());
        return new Tensor(name, dtype, new long[] {count, cols()}, data.asSlice(from * rowBytes, count * rowBytes));
    }

    /**
     * Columns {@code [from, from + count)} of a 2-D tensor, copied into {@code arena} (they are strided in this
     * one): only those bytes of a memory-mapped tensor are read. Block-quantized columns split on block boundaries
     * only; otherwise the error names the columns and the block size.
     */
    public Tensor columnRange(long from, long count, Arena arena) {
        if (from % dtype.blockSize() != 0 || count % dtype.blockSize() != 0) {
            throw new IllegalArgumentException("tensor " + name + ": columns [" + from + ", " + (from + count) + ") of "
                    + cols() + " do not fall on " + dtype + " block boundaries (blocks of " + dtype.blockSize()
                    + " columns); a tensor-parallel split of this dimension must cut whole blocks");
        }
        long rowBytes = dtype.bytes(cols());
        long offset = dtype.bytes(from);
        long sliceBytes = dtype.bytes(count);
        MemorySegment copy = arena.allocate(rows() * sliceBytes, 64);
        for (long r = 0; r < rows(); r++) {
            MemorySegment.copy(data, r * rowBytes + offset, copy, r * sliceBytes, sliceBytes);
        }
        return new Tensor(name, dtype, new long[] {rows(), count}, copy);
    }

    /**
     * This tensor stored as {@code to}, in new memory of {@code arena}: rows widened to float and rounded into
     * {@code to} as {@link DType#quantize} does (exact for a plain type at least as wide).
     */
    public Tensor convert(DType to, Arena arena) {
        int cols = Math.toIntExact(shape.length == 0 ? 1 : shape[shape.length - 1]);
        long rows = numElements() / cols;
        long rowBytes = to.bytes(cols);
        MemorySegment out = arena.allocate(Math.max(1, rows * rowBytes), 64);
        float[] row = new float[cols];
        for (long r = 0; r < rows; r++) {
            copyTo(r * cols, row, 0, cols);
            to.quantize(row, 0, cols / to.blockSize(), out, r * rowBytes);
        }
        return new Tensor(name, to, shape, out.asSlice(0, rows * rowBytes));
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
