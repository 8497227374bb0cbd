package io.flover.kernels.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RopeTest {
    /** The rotation frequencies of a rope, read back by rotating (1, 0) pairs by one position. */
    private static double[] frequencies(Rope rope, int headDim) {
        float[] x = new float[headDim];
        java.util.Arrays.fill(x, 0, headDim / 2, 1f);
        rope.apply(x, 0, 1, new int[] {1}, 1);
        double[] f = new double[headDim / 2];
        for (int i = 0; i < f.length; i++) {
            f[i] = Math.atan2(x[i + headDim / 2], x[i]);
        }
        return f;
    }

    @Test
    void plainRopeUsesThetaPowers() {
        double[] f = frequencies(new Rope(64, 10000), 64);
        for (int i = 0; i < 32; i++) {
            assertEquals(Math.pow(10000, -2.0 * i / 64), f[i], 1e-6, "frequency " + i);
        }
    }

    @Test
    void rotatesPairsHalfAHeadApart() {
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8}; // head dim 4, two heads
        new Rope(4, 10000).apply(x, 0, 1, new int[] {3}, 2);
        double a0 = 3;
        double a1 = 3 * Math.pow(10000, -0.5);
        assertEquals(1 * Math.cos(a0) - 3 * Math.sin(a0), x[0], 1e-5);
        assertEquals(3 * Math.cos(a0) + 1 * Math.sin(a0), x[2], 1e-5);
        assertEquals(2 * Math.cos(a1) - 4 * Math.sin(a1), x[1], 1e-5);
        assertEquals(5 * Math.cos(a0) - 7 * Math.sin(a0), x[4], 1e-5);
    }

    /**
     * Llama 3.1's scaling (factor 8, low 1, high 4, original context 8192): wavelengths under 2048 positions keep
     * their frequency, those over 8192 are slowed by the factor, those between blend the two.
     */
    @Test
    void llama3ScalingKeepsHighFrequenciesAndSlowsLowOnes() {
        int hd = 128;
        double theta = 500000;
        double[] f = frequencies(new Rope(hd, theta, new Rope.Llama3Scaling(8, 1, 4, 8192)), hd);
        int blended = 0;
        for (int i = 0; i < hd / 2; i++) {
            double plain = Math.pow(theta, -2.0 * i / hd);
            double wavelength = 2 * Math.PI / plain;
            if (wavelength < 2048) {
                assertEquals(plain, f[i], 1e-6 * plain + 1e-7, "high frequency " + i);
            } else if (wavelength > 8192) {
                assertEquals(plain / 8, f[i], 1e-3 * plain, "low frequency " + i);
            } else {
                blended++;
                assertTrue(f[i] > plain / 8 * 0.999 && f[i] < plain * 1.001, "blended frequency " + i);
            }
        }
        assertTrue(blended > 0, "no frequency fell in the blended band");
    }
}
