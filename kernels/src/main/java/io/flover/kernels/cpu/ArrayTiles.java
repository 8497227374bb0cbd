package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.WeightKernels.F;
import static io.flover.kernels.cpu.WeightKernels.LANES;
import static jdk.incubator.vector.VectorOperators.ADD;

import jdk.incubator.vector.FloatVector;

/**
 * The matmul register tiles of {@link WeightKernels.Direct} for weights already widened into a float array; the
 * row offsets {@code r0..r3} are float indexes.
 */
final class ArrayTiles {
    private ArrayTiles() {
    }

    static void tile4x4(float[] w, int r0, int r1, int r2, int r3, float[] x, int x0, int x1, int x2, int x3, int kVec,
                        float[] sums) {
        // A zero made here: accumulators that start from a static constant vector get boxed by C2.
        FloatVector zero = FloatVector.zero(F);
        FloatVector a00 = zero, a01 = zero, a02 = zero, a03 = zero;
        FloatVector a10 = zero, a11 = zero, a12 = zero, a13 = zero;
        FloatVector a20 = zero, a21 = zero, a22 = zero, a23 = zero;
        FloatVector a30 = zero, a31 = zero, a32 = zero, a33 = zero;
        for (int i = 0; i < kVec; i += LANES) {
            FloatVector w0i = FloatVector.fromArray(F, w, r0 + i);
            FloatVector w1i = FloatVector.fromArray(F, w, r1 + i);
            FloatVector w2i = FloatVector.fromArray(F, w, r2 + i);
            FloatVector w3i = FloatVector.fromArray(F, w, r3 + i);
            FloatVector x0i = FloatVector.fromArray(F, x, x0 + i);
            a00 = w0i.fma(x0i, a00); a10 = w1i.fma(x0i, a10); a20 = w2i.fma(x0i, a20); a30 = w3i.fma(x0i, a30);
            FloatVector x1i = FloatVector.fromArray(F, x, x1 + i);
            a01 = w0i.fma(x1i, a01); a11 = w1i.fma(x1i, a11); a21 = w2i.fma(x1i, a21); a31 = w3i.fma(x1i, a31);
            FloatVector x2i = FloatVector.fromArray(F, x, x2 + i);
            a02 = w0i.fma(x2i, a02); a12 = w1i.fma(x2i, a12); a22 = w2i.fma(x2i, a22); a32 = w3i.fma(x2i, a32);
            FloatVector x3i = FloatVector.fromArray(F, x, x3 + i);
            a03 = w0i.fma(x3i, a03); a13 = w1i.fma(x3i, a13); a23 = w2i.fma(x3i, a23); a33 = w3i.fma(x3i, a33);
        }
        sums[0] = a00.reduceLanes(ADD); sums[1] = a10.reduceLanes(ADD);
        sums[2] = a20.reduceLanes(ADD); sums[3] = a30.reduceLanes(ADD);
        sums[4] = a01.reduceLanes(ADD); sums[5] = a11.reduceLanes(ADD);
        sums[6] = a21.reduceLanes(ADD); sums[7] = a31.reduceLanes(ADD);
        sums[8] = a02.reduceLanes(ADD); sums[9] = a12.reduceLanes(ADD);
        sums[10] = a22.reduceLanes(ADD); sums[11] = a32.reduceLanes(ADD);
        sums[12] = a03.reduceLanes(ADD); sums[13] = a13.reduceLanes(ADD);
        sums[14] = a23.reduceLanes(ADD); sums[15] = a33.reduceLanes(ADD);
    }

    static void tile4x1(float[] w, int r0, int r1, int r2, int r3, float[] x, int x0, int kVec,
                        float[] sums) {
        // A zero made here: accumulators that start from a static constant vector get boxed by C2.
        FloatVector zero = FloatVector.zero(F);
        FloatVector a00 = zero, a10 = zero, a20 = zero, a30 = zero;
        for (int i = 0; i < kVec; i += LANES) {
            FloatVector x0i = FloatVector.fromArray(F, x, x0 + i);
            a00 = FloatVector.fromArray(F, w, r0 + i).fma(x0i, a00);
            a10 = FloatVector.fromArray(F, w, r1 + i).fma(x0i, a10);
            a20 = FloatVector.fromArray(F, w, r2 + i).fma(x0i, a20);
            a30 = FloatVector.fromArray(F, w, r3 + i).fma(x0i, a30);
        }
        sums[0] = a00.reduceLanes(ADD); sums[1] = a10.reduceLanes(ADD);
        sums[2] = a20.reduceLanes(ADD); sums[3] = a30.reduceLanes(ADD);
    }
}
