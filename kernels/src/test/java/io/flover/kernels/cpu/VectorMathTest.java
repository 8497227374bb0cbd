package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;
import static io.flover.kernels.cpu.CpuKernels.LANES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class VectorMathTest {
    @Test
    void sumIsAlwaysTheSameTreeOfAdds() {
        SplittableRandom random = new SplittableRandom(3);
        float[] x = new float[LANES];
        for (int round = 0; round < 20_000; round++) {
            // Magnitudes 1 to 1e6 apart, so that another order of the adds gives other bits.
            for (int i = 0; i < LANES; i++) {
                x[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(7)));
            }
            assertEquals(Float.floatToRawIntBits(tree(x, 0, LANES)),
                    Float.floatToRawIntBits(VectorMath.sum(FloatVector.fromArray(F, x, 0))), "round " + round);
        }
    }

    /** Folds in scalar code: lane i gets lane i + half added, for halves of LANES/2, LANES/4, ..., 1. */
    private static float tree(float[] x, int from, int n) {
        float[] v = java.util.Arrays.copyOfRange(x, from, from + n);
        for (int half = n / 2; half >= 1; half /= 2) {
            for (int i = 0; i < half; i++) {
                v[i] = v[i] + v[i + half];
            }
        }
        return v[0];
    }

    @Test
    void expIsWithinTwoUlpOfMathExp() {
        float[] x = new float[LANES];
        for (float v = -87.3f; v < 88.3f; v += 0.001f) {
            for (int i = 0; i < LANES; i++) {
                x[i] = v + i * 1e-5f;
            }
            float[] y = VectorMath.exp(FloatVector.fromArray(F, x, 0)).toArray();
            for (int i = 0; i < LANES; i++) {
                float expected = (float) Math.exp(x[i]);
                assertTrue(Math.abs(y[i] - expected) <= 2 * Math.ulp(expected), x[i] + ": " + y[i] + " vs " + expected);
            }
        }
    }

    @Test
    void expOfTheExtremes() {
        float[] x = {Float.NEGATIVE_INFINITY, -1000f, -88f, 0f, -0f, 89f, 1000f, Float.POSITIVE_INFINITY, Float.NaN};
        float[] expected = {0f, 0f, 0f, 1f, 1f, Float.POSITIVE_INFINITY, Float.POSITIVE_INFINITY,
                Float.POSITIVE_INFINITY, Float.NaN};
        float[] lanes = new float[LANES];
        for (int c = 0; c < x.length; c++) {
            java.util.Arrays.fill(lanes, x[c]);
            assertEquals(expected[c], VectorMath.exp(FloatVector.fromArray(F, lanes, 0)).lane(LANES - 1), "exp " + x[c]);
        }
    }
}
