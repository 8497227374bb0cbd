package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;
import static io.flover.kernels.cpu.CpuKernels.LANES;
import static jdk.incubator.vector.VectorOperators.GT;
import static jdk.incubator.vector.VectorOperators.LSHL;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorShuffle;

/**
 * A lane sum and an exponential whose results do not depend on the JIT. The Vector API's own
 * {@code reduceLanes(ADD)} and {@code EXP} are computed lane by lane in order ({@code Math.exp})
 * until C2 compiles the caller, and then as a tree of adds and by the SVML library: the same input gives other
 * bits a few thousand calls later, so a request served while the server warms up would not equal itself served
 * warm. These use only adds, multiplies, fused multiply-adds, shuffles and bit moves, which every tier computes
 * alike.
 */
final class VectorMath {
    /** The folds of {@link #sum}: swap lanes LANES/2 apart, then LANES/4, ... down to 1. */
    private static final VectorShuffle<Float>[] HALVINGS = halvings();

    /** Below this exp(x) is subnormal, returned as 0; above {@link #EXP_MAX} the scaling power of two overflows. */
    private static final float EXP_MIN = -87.33654f;
    private static final float EXP_MAX = 88.37626f;
    /** exp(x) for x above this is infinite in float32. */
    private static final float EXP_OVERFLOW = 88.72284f;
    private static final float LOG2E = 1.44269504f;
    /** ln 2 split in two: {@code n * LN2_HI} is exact for the {@code |n| <= 127} used here. */
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** 1.5 * 2^23: adding it rounds a float of magnitude under 2^22 to an integer, held in the low mantissa bits. */
    private static final float ROUND = 12582912f;

    private VectorMath() {
    }

    /**
     * The sum of the lanes of {@code v}, always by the same tree: lane i and lane i + LANES/2 first, then the
     * partial sums LANES/4 apart, and so on.
     */
    static float sum(FloatVector v) {
        for (VectorShuffle<Float> fold : HALVINGS) {
            v = v.add(v.rearrange(fold));
        }
        return v.lane(0);
    }

    /**
     * e^x per lane, within 2 ulp of {@link Math#exp} for x in [-87.3, 88.4] (Cephes' expf: x = n ln 2 + r with
     * |r| <= ln 2 / 2, a degree-6 polynomial in r, times 2^n); 0 below, and above the largest finite float's
     * logarithm infinity (between the two, the value at 88.4).
     */
    static FloatVector exp(FloatVector x) {
        FloatVector c = x.max(EXP_MIN).min(EXP_MAX);
        FloatVector t = c.fma(LOG2E, ROUND);
        FloatVector n = t.sub(ROUND);
        FloatVector r = n.fma(constant(-LN2_HI), c);
        r = n.fma(constant(-LN2_LO), r);
        FloatVector p = r.fma(1.9875691500e-4f, 1.3981999507e-3f);
        p = p.fma(r, constant(8.3334519073e-3f));
        p = p.fma(r, constant(4.1665795894e-2f));
        p = p.fma(r, constant(1.6666665459e-1f));
        p = p.fma(r, constant(5.0000001201e-1f));
        FloatVector y = p.fma(r.mul(r), r).add(1f);
        // 2^n from its bits: t's low mantissa bits hold n + 2^22.
        IntVector bits = t.reinterpretAsInts().sub(Float.floatToRawIntBits(ROUND) - 127).lanewise(LSHL, 23);
        y = y.mul(bits.reinterpretAsFloats());
        y = y.blend(0f, x.lt(EXP_MIN));
        return y.blend(Float.POSITIVE_INFINITY, x.compare(GT, EXP_OVERFLOW));
    }

    private static FloatVector constant(float value) {
        return FloatVector.broadcast(F, value);
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] halvings() {
        int count = Integer.numberOfTrailingZeros(LANES);
        VectorShuffle<Float>[] folds = new VectorShuffle[count];
        for (int f = 0; f < count; f++) {
            int distance = LANES / 2 >> f;
            folds[f] = VectorShuffle.fromOp(F, i -> i ^ distance);
        }
        return folds;
    }
}
