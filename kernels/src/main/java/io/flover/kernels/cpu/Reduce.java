package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;
import static io.flover.kernels.cpu.CpuKernels.LANES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;

/**
 * Horizontal sums of four vectors at once: the first two folds merge pairs of vectors into one, so the four
 * sums take about as many shuffles and adds as two separate {@code reduceLanes}.
 */
final class Reduce {
    private static final VectorShuffle<Float> SWAP_HALVES = VectorShuffle.fromOp(F, i -> i ^ (LANES / 2));
    private static final VectorShuffle<Float> SWAP_QUARTERS = VectorShuffle.fromOp(F, i -> i ^ (LANES / 4));
    private static final VectorMask<Float> UPPER_HALF = VectorMask.fromLong(F, lanes(0b1100));
    private static final VectorMask<Float> ODD_QUARTERS = VectorMask.fromLong(F, lanes(0b1010));
    /** The folds that finish each quarter: swap lanes LANES/8 apart, then LANES/16, ... down to 1. */
    private static final VectorShuffle<Float>[] FOLDS = folds();

    private Reduce() {
    }

    /** {@code s[at..at+3]} = the sums of the lanes of {@code a}, {@code b}, {@code c} and {@code d}. */
    static void sum4(FloatVector a, FloatVector b, FloatVector c, FloatVector d, float[] s, int at) {
        // Halves: a's partial sums in the lower half, b's in the upper; likewise c and d.
        FloatVector ab = a.add(a.rearrange(SWAP_HALVES)).blend(b.add(b.rearrange(SWAP_HALVES)), UPPER_HALF);
        FloatVector cd = c.add(c.rearrange(SWAP_HALVES)).blend(d.add(d.rearrange(SWAP_HALVES)), UPPER_HALF);
        // Quarters, in lane order: a, c, b, d.
        FloatVector x = ab.add(ab.rearrange(SWAP_QUARTERS)).blend(cd.add(cd.rearrange(SWAP_QUARTERS)), ODD_QUARTERS);
        for (VectorShuffle<Float> fold : FOLDS) {
            x = x.add(x.rearrange(fold));
        }
        s[at] = x.lane(0);
        s[at + 1] = x.lane(LANES / 2);
        s[at + 2] = x.lane(LANES / 4);
        s[at + 3] = x.lane(3 * LANES / 4);
    }

    /** The lane bits of the quarters selected by the 4 bits of {@code quarters} (bit 0 = lowest quarter). */
    private static long lanes(int quarters) {
        long bits = 0;
        for (int i = 0; i < LANES; i++) {
            if ((quarters >> (i / (LANES / 4)) & 1) != 0) {
                bits |= 1L << i;
            }
        }
        return bits;
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] folds() {
        int count = Integer.numberOfTrailingZeros(LANES / 4);
        VectorShuffle<Float>[] folds = new VectorShuffle[count];
        for (int f = 0; f < count; f++) {
            int distance = LANES / 8 >> f;
            folds[f] = VectorShuffle.fromOp(F, i -> i ^ distance);
        }
        return folds;
    }
}
