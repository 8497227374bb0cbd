package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;
import static io.flover.kernels.cpu.CpuKernels.LANES;
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
 * How a {@link PackedMatrix} stores its weights, and the matmul register tiles that read them. Weights are cut into
 * groups of {@link #GROUP} output rows (two vectors' worth); a group holds, for each input column {@code i} in
 * order, its rows' weights at {@code i}. A tile loads one column of a group as two vectors, multiplies them by
 * {@code x[t][i]} broadcast, and adds into one accumulator pair per token {@code t}: {@code tile12} keeps 24
 * accumulators live and reduces nothing horizontally. Each accumulator lane is one output {@code (t, row)} summed
 * over {@code i = 0, 1, ..., k - 1} by fused multiply-adds, the same order in every tile, so an output never
 * depends on the batch it is computed in, the tile that holds it or the thread that runs it.
 *
 * <p>A new weight format (a quantized one, say) plugs in here: a subclass packs a tensor into its group layout
 * ({@link #pack}, {@link #groupBytes}) and writes the three tiles so that they decode a group's column (or block
 * of columns) into two float vectors in registers inside the loop, then multiply-add exactly as these do. Each
 * format has its own copy of the tiles: a decoder called through a shared tile would be a call C2 cannot inline
 * once several formats are in use, and every vector crossing it would be boxed.
 */
abstract sealed class PanelFormat {
    /** Output rows of a group: two vectors, so that a tile has two weight vectors per broadcast x. */
    static final int GROUP = 2 * LANES;
    /** Tokens of the widest tile: 12 x 2 accumulators, plus two weights and a broadcast, fit 32 registers. */
    static final int MAX_TILE = 12;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    static final PanelFormat F32 = new F32Panels();
    static final PanelFormat BF16 = new Bf16Panels();

    /**
     * The format weights of {@code dtype} are packed in: F16, and the block-quantized types until they have formats
     * of their own, are widened to F32 once, at packing.
     */
    static PanelFormat of(DType dtype) {
        return dtype == DType.BF16 ? BF16 : F32;
    }

    /** Bytes one group of {@code k} columns takes. */
    abstract long groupBytes(int k);

    /**
     * Writes group {@code g} at {@code out[offset..]} from {@code rows}: {@link #GROUP} rows of {@code k} floats,
     * row {@code r} at {@code rows[r * k..]}, exactly representable in the format.
     */
    abstract void pack(float[] rows, int k, MemorySegment out, long offset);

    /**
     * Multiplies the group at byte {@code group} of {@code w} by the {@code tokens} (1..12) x rows from
     * {@code x[x0..]} ({@code k} floats apart) into {@code acc[t * GROUP..]}. Tiles of fewer tokens than they
     * hold repeat the last one; the caller stores only the real ones.
     */
    abstract void tile12(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc);

    /** {@link #tile12} for 1..4 tokens: 8 accumulators. */
    abstract void tile4(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc);

    /** {@link #tile12} for one token: decoding, which streams the weights once and is bound by memory. */
    abstract void tile1(MemorySegment w, long group, int k, float[] x, int x0, float[] acc);

    /** Offset of the {@code t}-th token of a tile of {@code tokens}, repeating the last for the missing ones. */
    static int token(int x0, int t, int tokens, int k) {
        return x0 + Math.min(t, tokens - 1) * k;
    }

    private static final class F32Panels extends PanelFormat {
        private static final ValueLayout.OfFloat LAYOUT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
        private static final long COLUMN = (long) GROUP * Float.BYTES;
        private static final long HI = (long) LANES * Float.BYTES;

        @Override
        long groupBytes(int k) {
            return k * COLUMN;
        }

        @Override
        void pack(float[] rows, int k, MemorySegment out, long offset) {
            float[] column = new float[GROUP];
            for (int i = 0; i < k; i++) {
                for (int r = 0; r < GROUP; r++) {
                    column[r] = rows[r * k + i];
                }
                MemorySegment.copy(column, 0, out, LAYOUT, offset + i * COLUMN, GROUP);
            }
        }

        @Override
        void tile12(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc) {
            int o0 = token(x0, 0, tokens, k), o1 = token(x0, 1, tokens, k), o2 = token(x0, 2, tokens, k);
            int o3 = token(x0, 3, tokens, k), o4 = token(x0, 4, tokens, k), o5 = token(x0, 5, tokens, k);
            int o6 = token(x0, 6, tokens, k), o7 = token(x0, 7, tokens, k), o8 = token(x0, 8, tokens, k);
            int o9 = token(x0, 9, tokens, k), o10 = token(x0, 10, tokens, k), o11 = token(x0, 11, tokens, k);
            // A zero made here: accumulators that start from a static constant vector get boxed by C2.
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero;
            FloatVector a6 = zero, a7 = zero, a8 = zero, a9 = zero, a10 = zero, a11 = zero;
            FloatVector b0 = zero, b1 = zero, b2 = zero, b3 = zero, b4 = zero, b5 = zero;
            FloatVector b6 = zero, b7 = zero, b8 = zero, b9 = zero, b10 = zero, b11 = zero;
            for (int i = 0; i < k; i++) {
                long at = group + i * COLUMN;
                FloatVector lo = FloatVector.fromMemorySegment(F, w, at, LE);
                FloatVector hi = FloatVector.fromMemorySegment(F, w, at + HI, LE);
                FloatVector v;
                v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
                v = FloatVector.broadcast(F, x[o4 + i]); a4 = lo.fma(v, a4); b4 = hi.fma(v, b4);
                v = FloatVector.broadcast(F, x[o5 + i]); a5 = lo.fma(v, a5); b5 = hi.fma(v, b5);
                v = FloatVector.broadcast(F, x[o6 + i]); a6 = lo.fma(v, a6); b6 = hi.fma(v, b6);
                v = FloatVector.broadcast(F, x[o7 + i]); a7 = lo.fma(v, a7); b7 = hi.fma(v, b7);
                v = FloatVector.broadcast(F, x[o8 + i]); a8 = lo.fma(v, a8); b8 = hi.fma(v, b8);
                v = FloatVector.broadcast(F, x[o9 + i]); a9 = lo.fma(v, a9); b9 = hi.fma(v, b9);
                v = FloatVector.broadcast(F, x[o10 + i]); a10 = lo.fma(v, a10); b10 = hi.fma(v, b10);
                v = FloatVector.broadcast(F, x[o11 + i]); a11 = lo.fma(v, a11); b11 = hi.fma(v, b11);
            }
            // Stored here, not by a helper: vectors passed to a call C2 does not inline get boxed.
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
            a4.intoArray(acc, 4 * GROUP); b4.intoArray(acc, 4 * GROUP + LANES);
            a5.intoArray(acc, 5 * GROUP); b5.intoArray(acc, 5 * GROUP + LANES);
            a6.intoArray(acc, 6 * GROUP); b6.intoArray(acc, 6 * GROUP + LANES);
            a7.intoArray(acc, 7 * GROUP); b7.intoArray(acc, 7 * GROUP + LANES);
            a8.intoArray(acc, 8 * GROUP); b8.intoArray(acc, 8 * GROUP + LANES);
            a9.intoArray(acc, 9 * GROUP); b9.intoArray(acc, 9 * GROUP + LANES);
            a10.intoArray(acc, 10 * GROUP); b10.intoArray(acc, 10 * GROUP + LANES);
            a11.intoArray(acc, 11 * GROUP); b11.intoArray(acc, 11 * GROUP + LANES);
        }

        @Override
        void tile4(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc) {
            int o0 = token(x0, 0, tokens, k), o1 = token(x0, 1, tokens, k);
            int o2 = token(x0, 2, tokens, k), o3 = token(x0, 3, tokens, k);
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero;
            FloatVector b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            for (int i = 0; i < k; i++) {
                long at = group + i * COLUMN;
                FloatVector lo = FloatVector.fromMemorySegment(F, w, at, LE);
                FloatVector hi = FloatVector.fromMemorySegment(F, w, at + HI, LE);
                FloatVector v;
                v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }

        @Override
        void tile1(MemorySegment w, long group, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, b0 = zero;
            for (int i = 0; i < k; i++) {
                long at = group + i * COLUMN;
                FloatVector v = FloatVector.broadcast(F, x[x0 + i]);
                a0 = FloatVector.fromMemorySegment(F, w, at, LE).fma(v, a0);
                b0 = FloatVector.fromMemorySegment(F, w, at + HI, LE).fma(v, b0);
            }
            a0.intoArray(acc, 0);
            b0.intoArray(acc, LANES);
        }
    }

    /** BF16 weights, kept at two bytes: a column of a group is one 2-vector load widened in registers. */
    private static final class Bf16Panels extends PanelFormat {
        private static final VectorSpecies<Integer> I = F.withLanes(int.class);
        /** Half-width shorts: as many lanes as {@link CpuKernels#F}, zero-extended into {@link #I}. */
        private static final VectorSpecies<Short> H =
                VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
        private static final ValueLayout.OfShort LAYOUT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
        private static final long COLUMN = (long) GROUP * Short.BYTES;
        private static final long HI = (long) LANES * Short.BYTES;

        private static FloatVector load(MemorySegment w, long offset) {
            ShortVector h = ShortVector.fromMemorySegment(H, w, offset, LE);
            return ((IntVector) h.convertShape(ZERO_EXTEND_S2I, I, 0)).lanewise(LSHL, 16).reinterpretAsFloats();
        }

        @Override
        long groupBytes(int k) {
            return k * COLUMN;
        }

        @Override
        void pack(float[] rows, int k, MemorySegment out, long offset) {
            short[] column = new short[GROUP];
            for (int i = 0; i < k; i++) {
                for (int r = 0; r < GROUP; r++) {
                    column[r] = (short) (Float.floatToRawIntBits(rows[r * k + i]) >>> 16);
                }
                MemorySegment.copy(column, 0, out, LAYOUT, offset + i * COLUMN, GROUP);
            }
        }

        @Override
        void tile12(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc) {
            int o0 = token(x0, 0, tokens, k), o1 = token(x0, 1, tokens, k), o2 = token(x0, 2, tokens, k);
            int o3 = token(x0, 3, tokens, k), o4 = token(x0, 4, tokens, k), o5 = token(x0, 5, tokens, k);
            int o6 = token(x0, 6, tokens, k), o7 = token(x0, 7, tokens, k), o8 = token(x0, 8, tokens, k);
            int o9 = token(x0, 9, tokens, k), o10 = token(x0, 10, tokens, k), o11 = token(x0, 11, tokens, k);
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero;
            FloatVector a6 = zero, a7 = zero, a8 = zero, a9 = zero, a10 = zero, a11 = zero;
            FloatVector b0 = zero, b1 = zero, b2 = zero, b3 = zero, b4 = zero, b5 = zero;
            FloatVector b6 = zero, b7 = zero, b8 = zero, b9 = zero, b10 = zero, b11 = zero;
            for (int i = 0; i < k; i++) {
                long at = group + i * COLUMN;
                FloatVector lo = load(w, at);
                FloatVector hi = load(w, at + HI);
                FloatVector v;
                v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
                v = FloatVector.broadcast(F, x[o4 + i]); a4 = lo.fma(v, a4); b4 = hi.fma(v, b4);
                v = FloatVector.broadcast(F, x[o5 + i]); a5 = lo.fma(v, a5); b5 = hi.fma(v, b5);
                v = FloatVector.broadcast(F, x[o6 + i]); a6 = lo.fma(v, a6); b6 = hi.fma(v, b6);
                v = FloatVector.broadcast(F, x[o7 + i]); a7 = lo.fma(v, a7); b7 = hi.fma(v, b7);
                v = FloatVector.broadcast(F, x[o8 + i]); a8 = lo.fma(v, a8); b8 = hi.fma(v, b8);
                v = FloatVector.broadcast(F, x[o9 + i]); a9 = lo.fma(v, a9); b9 = hi.fma(v, b9);
                v = FloatVector.broadcast(F, x[o10 + i]); a10 = lo.fma(v, a10); b10 = hi.fma(v, b10);
                v = FloatVector.broadcast(F, x[o11 + i]); a11 = lo.fma(v, a11); b11 = hi.fma(v, b11);
            }
            // Stored here, not by a helper: vectors passed to a call C2 does not inline get boxed.
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
            a4.intoArray(acc, 4 * GROUP); b4.intoArray(acc, 4 * GROUP + LANES);
            a5.intoArray(acc, 5 * GROUP); b5.intoArray(acc, 5 * GROUP + LANES);
            a6.intoArray(acc, 6 * GROUP); b6.intoArray(acc, 6 * GROUP + LANES);
            a7.intoArray(acc, 7 * GROUP); b7.intoArray(acc, 7 * GROUP + LANES);
            a8.intoArray(acc, 8 * GROUP); b8.intoArray(acc, 8 * GROUP + LANES);
            a9.intoArray(acc, 9 * GROUP); b9.intoArray(acc, 9 * GROUP + LANES);
            a10.intoArray(acc, 10 * GROUP); b10.intoArray(acc, 10 * GROUP + LANES);
            a11.intoArray(acc, 11 * GROUP); b11.intoArray(acc, 11 * GROUP + LANES);
        }

        @Override
        void tile4(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc) {
            int o0 = token(x0, 0, tokens, k), o1 = token(x0, 1, tokens, k);
            int o2 = token(x0, 2, tokens, k), o3 = token(x0, 3, tokens, k);
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero;
            FloatVector b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            for (int i = 0; i < k; i++) {
                long at = group + i * COLUMN;
                FloatVector lo = load(w, at);
                FloatVector hi = load(w, at + HI);
                FloatVector v;
                v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }

        @Override
        void tile1(MemorySegment w, long group, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, b0 = zero;
            for (int i = 0; i < k; i++) {
                long at = group + i * COLUMN;
                FloatVector v = FloatVector.broadcast(F, x[x0 + i]);
                a0 = load(w, at).fma(v, a0);
                b0 = load(w, at + HI).fma(v, b0);
            }
            a0.intoArray(acc, 0);
            b0.intoArray(acc, LANES);
        }
    }
}
