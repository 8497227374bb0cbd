package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.TestData.floats;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Matmul by block-quantized weights, decoded in the tiles' registers: bit for bit the matmul by float32 weights
 * holding the dequantised values (Tensor's dequantisation is checked against gguf-py in the model module), for
 * every tile width and thread count, so a token's row is the same whatever shares its step.
 */
class QuantizedMatmulTest {
    private static final int[] TOKENS = {1, 2, 3, 4, 5, 11, 12, 13, 30};

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void equalsTheMatmulOfTheDequantisedWeights(DType dtype) {
        SplittableRandom random = new SplittableRandom(dtype.ordinal());
        try (Arena arena = Arena.ofShared()) {
            int k = dtype.blockSize() == 256 ? 512 : 96;
            for (int n : new int[] {1, 31, 33, 100}) {
                float[] values = floats(random, n * k, 1);
                Tensor quantized = TestData.quantized(arena, dtype, n, k, values);
                PackedMatrix packed = PackedMatrix.of(quantized);
                PackedMatrix reference = PackedMatrix.of(quantized.convert(DType.F32, arena));
                for (int threads : new int[] {1, 2, 3}) {
                    try (CpuKernels kernels = new CpuKernels(threads)) {
                        for (int tokens : TOKENS) {
                            float[] x = floats(random, tokens * k, 2);
                            float[] expected = new float[tokens * n];
                            float[] actual = new float[tokens * n];
                            kernels.matmul(x, tokens, reference, expected);
                            kernels.matmul(x, tokens, packed, actual);
                            assertArrayEquals(expected, actual, dtype + " n " + n + " tokens " + tokens);
                            // Alone: each token's row by itself.
                            for (int t = 0; t < tokens; t++) {
                                float[] alone = new float[n];
                                kernels.matmul(Arrays.copyOfRange(x, t * k, (t + 1) * k), 1, packed, alone);
                                assertArrayEquals(Arrays.copyOfRange(actual, t * n, (t + 1) * n), alone,
                                        dtype + " token " + t + " of " + tokens + " alone");
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * Q4_0 panels keep the file's half-precision scales and widen them in the tiles' registers: every finite half,
     * subnormals, zeros and negatives included, must give the scale {@link DType#dequantize} gives. A row's 32
     * blocks take consecutive bit patterns, so that no block's part of the sum is lost beside a far larger one.
     */
    @Test
    void q4_0ScalesOfEveryFiniteHalfAreWidenedExactly() {
        int k = 32 * 32;
        int finite = 0x7C00; // halves 0x0000..0x7BFF, then their negatives
        int n = 2 * finite / 32;
        DType q4 = DType.Q4_0;
        SplittableRandom random = new SplittableRandom(7);
        try (Arena arena = Arena.ofShared(); CpuKernels kernels = new CpuKernels(2)) {
            MemorySegment data = arena.allocate(q4.bytes((long) n * k), 64);
            for (int b = 0; b < 2 * finite; b++) {
                long at = (long) b * q4.blockBytes();
                data.set(TestData.U16, at, (short) (b < finite ? b : 0x8000 | (b - finite)));
                for (int i = 2; i < q4.blockBytes(); i++) {
                    data.set(ValueLayout.JAVA_BYTE, at + i, (byte) random.nextInt());
                }
            }
            Tensor w = new Tensor("w", q4, new long[] {n, k}, data);
            for (int tokens : new int[] {1, 4, 12}) {
                float[] x = floats(random, tokens * k, 1);
                float[] expected = new float[tokens * n];
                float[] actual = new float[tokens * n];
                kernels.matmul(x, tokens, PackedMatrix.of(w.convert(DType.F32, arena)), expected);
                kernels.matmul(x, tokens, PackedMatrix.of(w), actual);
                assertArrayEquals(expected, actual, "tokens " + tokens);
            }
        }
    }

    @Test
    void aQ4_0ScaleThatIsNotFiniteIsRefusedNamingTheTensorAndTheBlock() {
        DType q4 = DType.Q4_0;
        try (Arena arena = Arena.ofShared()) {
            Tensor w = TestData.quantized(arena, q4, 4, 64, new float[4 * 64]);
            w.data().set(TestData.U16, 3L * q4.blockBytes(), (short) 0x7C00);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PackedMatrix.of(w));
            assertTrue(e.getMessage().contains("w row 1 columns 32..63: scale Infinity"), e.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
    void columnsThatAreNotWholeBlocksAreRefused(DType dtype) {
        try (Arena arena = Arena.ofShared()) {
            Tensor w = TestData.quantized(arena, dtype, 4, 64, new float[4 * 64]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.columnRange(16, 48, arena));
            assertTrue(e.getMessage().contains("columns [16, 64) of 64 do not fall on " + dtype
                    + " block boundaries (blocks of 32 columns)"), e.getMessage());
        }
    }
}
