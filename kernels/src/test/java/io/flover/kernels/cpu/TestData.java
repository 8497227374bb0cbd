package io.flover.kernels.cpu;

import static org.junit.jupiter.api.Assertions.fail;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import java.util.SplittableRandom;

/** Random inputs and tolerant comparisons for the kernel tests. */
final class TestData {
    /** The plain float dtypes the matmul reads directly (block-quantized weights are packed first). */
    static final List<DType> FLOAT_DTYPES = List.of(DType.F32, DType.F16, DType.BF16);

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TestData() {
    }

    static float[] floats(SplittableRandom random, int n, double bound) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextDouble(-bound, bound);
        }
        return a;
    }

    /** A {@code rows x cols} tensor of {@code dtype} in {@code arena} holding {@code values} (rounded to dtype). */
    static Tensor tensor(Arena arena, DType dtype, int rows, int cols, float[] values) {
        MemorySegment data = arena.allocate((long) rows * cols * dtype.bytes(), 8);
        for (int i = 0; i < values.length; i++) {
            switch (dtype) {
                case F32 -> data.setAtIndex(F32, i, values[i]);
                case BF16 -> data.setAtIndex(U16, i, (short) (Float.floatToRawIntBits(values[i]) >>> 16));
                case F16 -> data.setAtIndex(U16, i, Float.floatToFloat16(values[i]));
            }
        }
        return new Tensor("test", dtype, new long[] {rows, cols}, data);
    }

    /**
     * A block-quantized tensor of {@code values}: Q8_0 and Q4_0 quantized as ggml does; Q4_K and Q6_K blocks of
     * random bits (every bit pattern is a valid block) with small float16 scales.
     */
    static Tensor quantized(Arena arena, DType dtype, int rows, int cols, float[] values) {
        long bytes = dtype.bytes((long) rows * cols);
        java.lang.foreign.MemorySegment data = arena.allocate(bytes, 64);
        int blocks = rows * cols / dtype.blockSize();
        if (dtype == DType.Q8_0 || dtype == DType.Q4_0) {
            dtype.quantize(values, 0, blocks, data, 0);
        } else {
            SplittableRandom random = new SplittableRandom(Float.floatToIntBits(values[0]));
            for (long i = 0; i < bytes; i++) {
                data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) random.nextInt());
            }
            int[] scaleOffsets = dtype == DType.Q4_K ? new int[] {0, 2} : new int[] {208};
            for (int b = 0; b < blocks; b++) {
                for (int o : scaleOffsets) {
                    data.set(U16, (long) b * dtype.blockBytes() + o, Float.floatToFloat16((float) random.nextGaussian() * 0.01f));
                }
            }
        }
        return new Tensor("w", dtype, new long[] {rows, cols}, data);
    }

    /** A {@code rows x cols} 16-bit tensor whose elements are the given raw bit patterns. */
    static Tensor bits(Arena arena, DType dtype, int rows, int cols, short[] bits) {
        MemorySegment data = arena.allocate((long) rows * cols * 2, 8);
        for (int i = 0; i < bits.length; i++) {
            data.setAtIndex(U16, i, bits[i]);
        }
        return new Tensor("bits", dtype, new long[] {rows, cols}, data);
    }

    /**
     * Fails unless {@code |actual - expected| <= relative * scale + absolute} element-wise, where {@code scale}
     * is {@code scales[i]} if given, else {@code |expected[i]|}. NaNs must match NaNs, infinities exactly.
     */
    static void assertClose(String what, float[] expected, float[] actual, int n, float[] scales, double relative,
                            double absolute) {
        for (int i = 0; i < n; i++) {
            float e = expected[i];
            float a = actual[i];
            if (Float.isNaN(e) || Float.isInfinite(e)) {
                if (Float.compare(e, a) != 0 && !(Float.isNaN(e) && Float.isNaN(a))) {
                    fail(what + ": element " + i + " expected " + e + " but was " + a);
                }
                continue;
            }
            double scale = scales != null ? scales[i] : Math.abs(e);
            if (!(Math.abs(a - e) <= relative * scale + absolute)) {
                fail(what + ": element " + i + " expected " + e + " but was " + a + " (scale " + scale + ")");
            }
        }
    }
}
