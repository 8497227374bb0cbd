package io.flover.kernels.cpu;

import static jdk.incubator.vector.VectorOperators.ADD;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_S2I;

import io.flover.model.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Reads weights of one dtype from their little-endian (usually memory-mapped) segment, widening to float32.
 * F32 and BF16 are {@link Direct}: their matmul tiles load and widen weight vectors in registers (BF16 is the
 * upper half of a float32). F16 is not: JDK 25's Vector API has no half-float conversion, and doing it with
 * integer ops takes about ten vector ops per load, which pushes a 4-row tile past C2's inlining budget (every
 * vector then gets boxed). So F16 rows are widened into a float scratch first, by a scalar loop that C2
 * vectorises with the hardware conversion, and multiplied by {@link ArrayTiles}.
 */
abstract sealed class WeightKernels {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int LANES = F.length();
    private static final VectorSpecies<Integer> I = F.withLanes(int.class);
    /** Half-width shorts: as many lanes as {@link #F}, zero-extended into {@link #I}. */
    private static final VectorSpecies<Short> H =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32_LAYOUT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort U16_LAYOUT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    private static final WeightKernels F32_KERNELS = new F32();
    private static final WeightKernels BF16_KERNELS = new Bf16();
    private static final WeightKernels F16_KERNELS = new F16();

    static WeightKernels of(DType dtype) {
        return switch (dtype) {
            case F32 -> F32_KERNELS;
            case BF16 -> BF16_KERNELS;
            case F16 -> F16_KERNELS;
            default -> throw new IllegalArgumentException(dtype + " weights are widened before they reach the matmul");
        };
    }

    /** Element {@code index} (not byte offset) of {@code w}, widened to float. */
    abstract float get(MemorySegment w, long index);

    /** Widens {@code count} elements from element {@code from} of {@code w} into {@code out[offset..]}. */
    abstract void widen(MemorySegment w, long from, float[] out, int offset, int count);

    /**
     * Matmul register tiles reading the weight segment in place. {@code tile4x4} computes the dot products of
     * the 4 weight rows at byte offsets {@code r0..r3} with the 4 x rows at offsets {@code x0..x3} over
     * {@code [0, kVec)}, into {@code sums[4 * token + row]}. Rows or tokens may repeat (the caller clamps a
     * partial tile to its last row). The sums go to a scratch array rather than to {@code out}: every value kept
     * alive across the loop costs a register, and with 16 accumulators a spilled one slows the loop down. Rows
     * are read at offsets into the whole segment, not through per-row slices: C2 does not scalar-replace a slice
     * of a mapped segment, so slicing allocated four segments per tile and slowed down decoding.
     */
    abstract static sealed class Direct extends WeightKernels {
        abstract void tile4x4(MemorySegment w, long r0, long r1, long r2, long r3, float[] x, int x0,
                              int x1, int x2, int x3, int kVec, float[] sums);

        /** {@link #tile4x4} for the single x row at {@code x0}: {@code sums[0..3]}. */
        abstract void tile4x1(MemorySegment w, long r0, long r1, long r2, long r3, float[] x, int x0,
                              int kVec, float[] sums);
    }

    private static final class F32 extends Direct {
        private static final int BYTES = 4;

        private static FloatVector load(MemorySegment w, long offset) {
            return FloatVector.fromMemorySegment(F, w, offset, LE);
        }

        @Override
        float get(MemorySegment w, long index) {
            return w.getAtIndex(F32_LAYOUT, index);
        }

        @Override
        void widen(MemorySegment w, long from, float[] out, int offset, int count) {
            MemorySegment.copy(w, F32_LAYOUT, from * BYTES, out, offset, count);
        }

        @Override
        void tile4x4(MemorySegment w, long r0, long r1, long r2, long r3, float[] x, int x0, int x1,
                     int x2, int x3, int kVec, float[] sums) {
            // A zero made here: accumulators that start from a static constant vector get boxed by C2.
            FloatVector zero = FloatVector.zero(F);
            FloatVector a00 = zero, a01 = zero, a02 = zero, a03 = zero;
            FloatVector a10 = zero, a11 = zero, a12 = zero, a13 = zero;
            FloatVector a20 = zero, a21 = zero, a22 = zero, a23 = zero;
            FloatVector a30 = zero, a31 = zero, a32 = zero, a33 = zero;
            for (int i = 0; i < kVec; i += LANES) {
                long b = (long) i * BYTES;
                FloatVector w0i = load(w, r0 + b);
                FloatVector w1i = load(w, r1 + b);
                FloatVector w2i = load(w, r2 + b);
                FloatVector w3i = load(w, r3 + b);
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

        @Override
        void tile4x1(MemorySegment w, long r0, long r1, long r2, long r3, float[] x, int x0,
                     int kVec, float[] sums) {
            // A zero made here: accumulators that start from a static constant vector get boxed by C2.
            FloatVector zero = FloatVector.zero(F);
            FloatVector a00 = zero, a10 = zero, a20 = zero, a30 = zero;
            for (int i = 0; i < kVec; i += LANES) {
                long b = (long) i * BYTES;
                FloatVector x0i = FloatVector.fromArray(F, x, x0 + i);
                a00 = load(w, r0 + b).fma(x0i, a00);
                a10 = load(w, r1 + b).fma(x0i, a10);
                a20 = load(w, r2 + b).fma(x0i, a20);
                a30 = load(w, r3 + b).fma(x0i, a30);
            }
            sums[0] = a00.reduceLanes(ADD); sums[1] = a10.reduceLanes(ADD);
            sums[2] = a20.reduceLanes(ADD); sums[3] = a30.reduceLanes(ADD);
        }
    }

    private static final class Bf16 extends Direct {
        private static final int BYTES = 2;

        private static FloatVector load(MemorySegment w, long offset) {
            ShortVector h = ShortVector.fromMemorySegment(H, w, offset, LE);
            return ((IntVector) h.convertShape(ZERO_EXTEND_S2I, I, 0)).lanewise(LSHL, 16).reinterpretAsFloats();
        }

        @Override
        float get(MemorySegment w, long index) {
            return Float.intBitsToFloat((w.getAtIndex(U16_LAYOUT, index) & 0xFFFF) << 16);
        }

        @Override
        void widen(MemorySegment w, long from, float[] out, int offset, int count) {
            int vec = count - count % LANES;
            for (int i = 0; i < vec; i += LANES) {
                load(w, (from + i) * BYTES).intoArray(out, offset + i);
            }
            for (int i = vec; i < count; i++) {
                out[offset + i] = get(w, from + i);
            }
        }

        @Override
        void tile4x4(MemorySegment w, long r0, long r1, long r2, long r3, float[] x, int x0, int x1,
                     int x2, int x3, int kVec, float[] sums) {
            // A zero made here: accumulators that start from a static constant vector get boxed by C2.
            FloatVector zero = FloatVector.zero(F);
            FloatVector a00 = zero, a01 = zero, a02 = zero, a03 = zero;
            FloatVector a10 = zero, a11 = zero, a12 = zero, a13 = zero;
            FloatVector a20 = zero, a21 = zero, a22 = zero, a23 = zero;
            FloatVector a30 = zero, a31 = zero, a32 = zero, a33 = zero;
            for (int i = 0; i < kVec; i += LANES) {
                long b = (long) i * BYTES;
                FloatVector w0i = load(w, r0 + b);
                FloatVector w1i = load(w, r1 + b);
                FloatVector w2i = load(w, r2 + b);
                FloatVector w3i = load(w, r3 + b);
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

        @Override
        void tile4x1(MemorySegment w, long r0, long r1, long r2, long r3, float[] x, int x0,
                     int kVec, float[] sums) {
            // A zero made here: accumulators that start from a static constant vector get boxed by C2.
            FloatVector zero = FloatVector.zero(F);
            FloatVector a00 = zero, a10 = zero, a20 = zero, a30 = zero;
            for (int i = 0; i < kVec; i += LANES) {
                long b = (long) i * BYTES;
                FloatVector x0i = FloatVector.fromArray(F, x, x0 + i);
                a00 = load(w, r0 + b).fma(x0i, a00);
                a10 = load(w, r1 + b).fma(x0i, a10);
                a20 = load(w, r2 + b).fma(x0i, a20);
                a30 = load(w, r3 + b).fma(x0i, a30);
            }
            sums[0] = a00.reduceLanes(ADD); sums[1] = a10.reduceLanes(ADD);
            sums[2] = a20.reduceLanes(ADD); sums[3] = a30.reduceLanes(ADD);
        }
    }

    private static final class F16 extends WeightKernels {
        @Override
        float get(MemorySegment w, long index) {
            return Float.float16ToFloat(w.getAtIndex(U16_LAYOUT, index));
        }

        @Override
        void widen(MemorySegment w, long from, float[] out, int offset, int count) {
            // Kept scalar on purpose: C2 vectorises this loop with the hardware conversion.
            for (int i = 0; i < count; i++) {
                out[offset + i] = Float.float16ToFloat(w.getAtIndex(U16_LAYOUT, from + i));
            }
        }
    }
}
