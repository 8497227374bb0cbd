package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;
import static io.flover.kernels.cpu.CpuKernels.LANES;
import static jdk.incubator.vector.VectorOperators.AND;
import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.I2F;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
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
 * layout has its own copy of the tiles: a decoder called through a shared tile would be a call C2 cannot inline
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
    static final PanelFormat Q8_0 = new BytePanels(DType.Q8_0);
    static final PanelFormat Q6_K = new BytePanels(DType.Q6_K);
    static final PanelFormat Q4_0 = new Q4_0Panels();
    static final PanelFormat Q4_K = new OffsetNibblePanels();

    /** The format weights of {@code dtype} are packed in: F16 is widened to F32 once, at packing. */
    static PanelFormat of(DType dtype) {
        return switch (dtype) {
            case F32, F16 -> F32;
            case BF16 -> BF16;
            case Q8_0 -> Q8_0;
            case Q4_0 -> Q4_0;
            case Q4_K -> Q4_K;
            case Q6_K -> Q6_K;
        };
    }

    /** Bytes one group of {@code k} columns takes. */
    abstract long groupBytes(int k);

    /**
     * Writes group {@code g} at {@code out[offset..]} from {@code rows}: {@link #GROUP} rows of {@code k} floats,
     * row {@code r} at {@code rows[r * k..]}, exactly representable in the format.
     */
    abstract void pack(float[] rows, int k, MemorySegment out, long offset);

    /**
     * Writes the group of rows {@code [from, from + count)} of {@code w} (fewer than {@link #GROUP} rows: zero rows
     * after them) at {@code out[offset..]}. Plain formats go through floats; block formats copy their blocks.
     */
    void pack(Tensor w, int from, int count, float[] scratch, MemorySegment out, long offset) {
        int k = w.cols();
        w.copyTo((long) from * k, scratch, 0, count * k);
        Arrays.fill(scratch, count * k, GROUP * k, 0f);
        pack(scratch, k, out, offset);
    }

    /**
     * Multiplies the group at byte {@code group} of {@code w} by the {@code tokens} (1..12) x rows from
     * {@code x[x0..]} ({@code k} floats apart) into {@code acc[t * GROUP..]}. Tiles of fewer tokens than they
     * hold repeat the last one; the caller stores only the real ones.
     */
    abstract void tile12(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc);

    /** {@link #tile12} for 1..4 tokens: 8 accumulators. */
    abstract void tile4(MemorySegment w, long group, int k, float[] x, int x0, int tokens, float[] acc);

    /**
     * {@link #tile12} for one token over four groups at once ({@code g1..g3} may repeat {@code g0}), into
     * {@code acc[g * GROUP..]}: decoding streams every weight once and is bound by memory, and one core draws about
     * 1.75x the bandwidth from four streams as from one.
     */
    abstract void tile1(MemorySegment w, long g0, long g1, long g2, long g3, int k, float[] x, int x0, float[] acc);

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
        void tile1(MemorySegment w, long g0, long g1, long g2, long g3, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, b0 = zero, a1 = zero, b1 = zero, a2 = zero, b2 = zero, a3 = zero, b3 = zero;
            for (int i = 0; i < k; i++) {
                long at = i * COLUMN;
                FloatVector v = FloatVector.broadcast(F, x[x0 + i]);
                a0 = FloatVector.fromMemorySegment(F, w, g0 + at, LE).fma(v, a0); b0 = FloatVector.fromMemorySegment(F, w, g0 + at + HI, LE).fma(v, b0);
                a1 = FloatVector.fromMemorySegment(F, w, g1 + at, LE).fma(v, a1); b1 = FloatVector.fromMemorySegment(F, w, g1 + at + HI, LE).fma(v, b1);
                a2 = FloatVector.fromMemorySegment(F, w, g2 + at, LE).fma(v, a2); b2 = FloatVector.fromMemorySegment(F, w, g2 + at + HI, LE).fma(v, b2);
                a3 = FloatVector.fromMemorySegment(F, w, g3 + at, LE).fma(v, a3); b3 = FloatVector.fromMemorySegment(F, w, g3 + at + HI, LE).fma(v, b3);
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }
    }

    /** BF16 weights, kept at two bytes: a column of a group is one 2-vector load widened in registers. */
    private static final class Bf16Panels extends PanelFormat {
        private static final VectorSpecies<Integer> I = F.withLanes(int.class);
        private static final ValueLayout.OfShort LAYOUT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
        private static final long COLUMN = (long) GROUP * Short.BYTES;

        /**
         * A column of a group is one vector of ints, each holding row {@code j} in its low half and row
         * {@code LANES + j} in its high half (see {@link #pack}): a shift and a mask widen it into the two float
         * vectors, with no lane shuffles (widening shorts to ints costs a shuffle per vector, and decoding is
         * bound by those).
         */
        private static IntVector column(MemorySegment w, long offset) {
            return IntVector.fromMemorySegment(I, w, offset, LE);
        }

        private static FloatVector lo(IntVector column) {
            return column.lanewise(LSHL, 16).reinterpretAsFloats();
        }

        private static FloatVector hi(IntVector column) {
            return column.lanewise(AND, 0xFFFF0000).reinterpretAsFloats();
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
                    int at = r < LANES ? 2 * r : 2 * (r - LANES) + 1;
                    column[at] = (short) (Float.floatToRawIntBits(rows[r * k + i]) >>> 16);
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
                IntVector pair = column(w, at);
                FloatVector lo = lo(pair);
                FloatVector hi = hi(pair);
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
                IntVector pair = column(w, at);
                FloatVector lo = lo(pair);
                FloatVector hi = hi(pair);
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
        void tile1(MemorySegment w, long g0, long g1, long g2, long g3, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, b0 = zero, a1 = zero, b1 = zero, a2 = zero, b2 = zero, a3 = zero, b3 = zero;
            for (int i = 0; i < k; i++) {
                long at = i * COLUMN;
                FloatVector v = FloatVector.broadcast(F, x[x0 + i]);
                IntVector p0 = column(w, g0 + at);
                a0 = lo(p0).fma(v, a0); b0 = hi(p0).fma(v, b0);
                IntVector p1 = column(w, g1 + at);
                a1 = lo(p1).fma(v, a1); b1 = hi(p1).fma(v, b1);
                IntVector p2 = column(w, g2 + at);
                a2 = lo(p2).fma(v, a2); b2 = hi(p2).fma(v, b2);
                IntVector p3 = column(w, g3 + at);
                a3 = lo(p3).fma(v, a3); b3 = hi(p3).fma(v, b3);
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }
    }

    /**
     * ggml's block formats, split at packing ({@link DType#split}) into integer codes and, per row and sub-block of
     * {@code block} columns, a scale (and for Q4_K an offset), widened to float32 exactly (Q4_0 keeps its half and
     * widens it in the tiles). A group's sub-block is its {@link #GROUP} scales, then Q4_K's offsets, then its
     * columns' codes. A tile decodes a column into two float
     * vectors in registers, {@code code * scale (+ offset)} with an exact product, so each weight is the value ggml
     * dequantises, and multiply-adds it exactly as {@link F32Panels} does: the results are those of float32
     * weights holding the dequantised values, bit for bit, in the same fixed order.
     */
    private abstract static sealed class BlockPanels extends PanelFormat {
        /** As many bytes as float lanes: one load of codes widens into one float vector. */
        static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(F.vectorBitSize() / 4));
        static final ValueLayout.OfFloat SCALE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
        static final long SCALES = (long) GROUP * Float.BYTES;
        static final long HI_SCALE = (long) LANES * Float.BYTES;

        private final DType dtype;
        /** Columns of a sub-block: one scale (and offset) per row. */
        final int block;
        /** Bytes of a group's sub-block. */
        final long blockBytes;

        BlockPanels(DType dtype, long headerBytes, long columnBytes) {
            this.dtype = dtype;
            this.block = dtype.subBlockSize();
            this.blockBytes = headerBytes + block * columnBytes;
        }

        @Override
        long groupBytes(int k) {
            if (k % dtype.blockSize() != 0) {
                throw new IllegalArgumentException(k + " columns are not whole " + dtype + " blocks of " + dtype.blockSize());
            }
            return k / block * blockBytes;
        }

        @Override
        void pack(float[] rows, int k, MemorySegment out, long offset) {
            throw new UnsupportedOperationException(dtype + " panels are packed from their blocks");
        }

        @Override
        void pack(Tensor w, int from, int count, float[] scratch, MemorySegment out, long offset) {
            if (w.dtype() != dtype) {
                throw new IllegalArgumentException(dtype + " panels hold " + dtype + " weights, not " + w.dtype());
            }
            int k = w.cols();
            byte[] codes = new byte[k];
            float[] scales = new float[k / block];
            float[] offsets = new float[k / block];
            // Missing rows of the last group keep scales, offsets and codes 0: the memory starts zeroed.
            for (int r = 0; r < count; r++) {
                dtype.split(w.data(), (from + r) * dtype.bytes(k), k / dtype.blockSize(), codes, scales, offsets);
                for (int b = 0; b < k / block; b++) {
                    if (!holds(scales[b])) {
                        throw new IllegalArgumentException(w.name() + " row " + (from + r) + " columns " + b * block
                                + ".." + ((b + 1) * block - 1) + ": scale " + scales[b] + " (" + dtype
                                + " weights are read with finite scales only)");
                    }
                    long at = offset + b * blockBytes;
                    put(out, at, r, scales[b], offsets[b], codes, b * block);
                }
            }
        }

        /** Whether {@link #put} can store {@code scale}. */
        boolean holds(float scale) {
            return true;
        }

        /**
         * Puts row {@code r}'s scale, offset and codes ({@code codes[from..]}) into the group's sub-block at
         * {@code at}.
         */
        abstract void put(MemorySegment out, long at, int r, float scale, float offset, byte[] codes, int from);
    }

    /** Q8_0 and Q6_K: signed codes, a column's {@link #GROUP} bytes side by side, offsets 0 (not stored). */
    private static final class BytePanels extends BlockPanels {
        /**
         * Columns the tiles' inner loop runs between scale loads, the smallest sub-block (Q6_K's): a constant, as C2
         * unrolls a loop of a known trip count (one read from a field ran the prompt tiles at two thirds the speed).
         */
        private static final int SPAN = 16;
        /** log2 of {@link #block}: a column's sub-block is {@code c >>> shift}. */
        private final int shift;

        BytePanels(DType dtype) {
            super(dtype, SCALES, GROUP);
            this.shift = Integer.numberOfTrailingZeros(block);
            if (Integer.bitCount(block) != 1 || block % SPAN != 0) {
                throw new IllegalArgumentException(dtype + " sub-blocks of " + block + " columns");
            }
        }

        @Override
        void put(MemorySegment out, long at, int r, float scale, float offset, byte[] codes, int from) {
            out.set(SCALE, at + r * (long) Float.BYTES, scale);
            for (int c = 0; c < block; c++) {
                out.set(ValueLayout.JAVA_BYTE, at + SCALES + (long) c * GROUP + r, codes[from + c]);
            }
        }

        private static FloatVector column(MemorySegment w, long at) {
            return (FloatVector) ByteVector.fromMemorySegment(B, w, at, LE).convertShape(B2F, F, 0);
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
            for (int c = 0; c < k; c += SPAN) {
                long at = group + (c >>> shift) * blockBytes;
                FloatVector dLo = FloatVector.fromMemorySegment(F, w, at, LE);
                FloatVector dHi = FloatVector.fromMemorySegment(F, w, at + HI_SCALE, LE);
                long codes = at + SCALES + (long) (c & (block - 1)) * GROUP;
                for (int j = 0; j < SPAN; j++) {
                    long col = codes + (long) j * GROUP;
                    FloatVector lo = column(w, col).mul(dLo);
                    FloatVector hi = column(w, col + LANES).mul(dHi);
                    int i = c + j;
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
            }
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
            for (int c = 0; c < k; c += SPAN) {
                long at = group + (c >>> shift) * blockBytes;
                FloatVector dLo = FloatVector.fromMemorySegment(F, w, at, LE);
                FloatVector dHi = FloatVector.fromMemorySegment(F, w, at + HI_SCALE, LE);
                long codes = at + SCALES + (long) (c & (block - 1)) * GROUP;
                for (int j = 0; j < SPAN; j++) {
                    long col = codes + (long) j * GROUP;
                    FloatVector lo = column(w, col).mul(dLo);
                    FloatVector hi = column(w, col + LANES).mul(dHi);
                    int i = c + j;
                    FloatVector v;
                    v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                    v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                    v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                    v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
                }
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }

        @Override
        void tile1(MemorySegment w, long g0, long g1, long g2, long g3, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            for (int c = 0; c < k; c += SPAN) {
                long at = (c >>> shift) * blockBytes;
                FloatVector d0 = FloatVector.fromMemorySegment(F, w, g0 + at, LE);
                FloatVector e0 = FloatVector.fromMemorySegment(F, w, g0 + at + HI_SCALE, LE);
                FloatVector d1 = FloatVector.fromMemorySegment(F, w, g1 + at, LE);
                FloatVector e1 = FloatVector.fromMemorySegment(F, w, g1 + at + HI_SCALE, LE);
                FloatVector d2 = FloatVector.fromMemorySegment(F, w, g2 + at, LE);
                FloatVector e2 = FloatVector.fromMemorySegment(F, w, g2 + at + HI_SCALE, LE);
                FloatVector d3 = FloatVector.fromMemorySegment(F, w, g3 + at, LE);
                FloatVector e3 = FloatVector.fromMemorySegment(F, w, g3 + at + HI_SCALE, LE);
                long codes = at + SCALES + (long) (c & (block - 1)) * GROUP;
                for (int j = 0; j < SPAN; j++) {
                    long col = codes + (long) j * GROUP;
                    FloatVector v = FloatVector.broadcast(F, x[x0 + c + j]);
                    a0 = column(w, g0 + col).mul(d0).fma(v, a0); b0 = column(w, g0 + col + LANES).mul(e0).fma(v, b0);
                    a1 = column(w, g1 + col).mul(d1).fma(v, a1); b1 = column(w, g1 + col + LANES).mul(e1).fma(v, b1);
                    a2 = column(w, g2 + col).mul(d2).fma(v, a2); b2 = column(w, g2 + col + LANES).mul(e2).fma(v, b2);
                    a3 = column(w, g3 + col).mul(d3).fma(v, a3); b3 = column(w, g3 + col + LANES).mul(e3).fma(v, b3);
                }
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }
    }

    /**
     * The nibble formats: a column of a group is {@link #LANES} bytes, row {@code j}'s code in the low half of byte
     * {@code j} and row {@code LANES + j}'s in its high half, after each sub-block's scales (and offsets).
     */
    private abstract static sealed class NibblePanels extends BlockPanels {
        /** Columns of a sub-block (Q4_0's blocks, Q4_K's sub-blocks), a constant for C2 to unroll by. */
        static final int NIBBLE_BLOCK = 32;
        static final VectorSpecies<Integer> I = F.withLanes(int.class);
        /** Bytes before a sub-block's codes. */
        private final long header;

        NibblePanels(DType dtype, long header) {
            super(dtype, header, LANES);
            this.header = header;
            if (block != NIBBLE_BLOCK) {
                throw new IllegalArgumentException(dtype + " sub-blocks of " + block + " columns");
            }
        }

        /** Puts row {@code r}'s codes into the sub-block at {@code at}. */
        final void putCodes(MemorySegment out, long at, int r, byte[] codes, int from) {
            int shift = r < LANES ? 0 : 4;
            for (int c = 0; c < block; c++) {
                long to = at + header + (long) c * LANES + r % LANES;
                out.set(ValueLayout.JAVA_BYTE, to, (byte) (out.get(ValueLayout.JAVA_BYTE, to) | codes[from + c] << shift));
            }
        }

        /** A column's bytes widened to int lanes, where the mask and the shift are single instructions. */
        static IntVector nibbles(MemorySegment w, long at) {
            return (IntVector) ByteVector.fromMemorySegment(B, w, at, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
        }

        static FloatVector lo(IntVector pair) {
            return (FloatVector) pair.lanewise(AND, 0xF).convert(I2F, 0);
        }

        static FloatVector hi(IntVector pair) {
            return (FloatVector) pair.lanewise(LSHR, 4).convert(I2F, 0);
        }
    }

    /** Q4_K: a scale and an offset per row and sub-block, read by the tiles. */
    private static final class OffsetNibblePanels extends NibblePanels {
        OffsetNibblePanels() {
            super(DType.Q4_K, 2 * SCALES);
        }

        @Override
        void put(MemorySegment out, long at, int r, float scale, float offset, byte[] codes, int from) {
            out.set(SCALE, at + r * (long) Float.BYTES, scale);
            out.set(SCALE, at + SCALES + r * (long) Float.BYTES, offset);
            putCodes(out, at, r, codes, from);
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
            for (int c = 0; c < k; c += NIBBLE_BLOCK) {
                long at = group + c / NIBBLE_BLOCK * blockBytes;
                FloatVector dLo = FloatVector.fromMemorySegment(F, w, at, LE);
                FloatVector dHi = FloatVector.fromMemorySegment(F, w, at + HI_SCALE, LE);
                FloatVector mLo = FloatVector.fromMemorySegment(F, w, at + SCALES, LE);
                FloatVector mHi = FloatVector.fromMemorySegment(F, w, at + SCALES + HI_SCALE, LE);
                long codes = at + 2 * SCALES;
                for (int j = 0; j < NIBBLE_BLOCK; j++) {
                    IntVector pair = nibbles(w, codes + (long) j * LANES);
                    FloatVector lo = lo(pair).fma(dLo, mLo);
                    FloatVector hi = hi(pair).fma(dHi, mHi);
                    int i = c + j;
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
            }
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
            for (int c = 0; c < k; c += NIBBLE_BLOCK) {
                long at = group + c / NIBBLE_BLOCK * blockBytes;
                FloatVector dLo = FloatVector.fromMemorySegment(F, w, at, LE);
                FloatVector dHi = FloatVector.fromMemorySegment(F, w, at + HI_SCALE, LE);
                FloatVector mLo = FloatVector.fromMemorySegment(F, w, at + SCALES, LE);
                FloatVector mHi = FloatVector.fromMemorySegment(F, w, at + SCALES + HI_SCALE, LE);
                long codes = at + 2 * SCALES;
                for (int j = 0; j < NIBBLE_BLOCK; j++) {
                    IntVector pair = nibbles(w, codes + (long) j * LANES);
                    FloatVector lo = lo(pair).fma(dLo, mLo);
                    FloatVector hi = hi(pair).fma(dHi, mHi);
                    int i = c + j;
                    FloatVector v;
                    v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                    v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                    v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                    v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
                }
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }

        @Override
        void tile1(MemorySegment w, long g0, long g1, long g2, long g3, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            for (int c = 0; c < k; c += NIBBLE_BLOCK) {
                long at = c / NIBBLE_BLOCK * blockBytes;
                FloatVector d0 = FloatVector.fromMemorySegment(F, w, g0 + at, LE);
                FloatVector e0 = FloatVector.fromMemorySegment(F, w, g0 + at + HI_SCALE, LE);
                FloatVector d1 = FloatVector.fromMemorySegment(F, w, g1 + at, LE);
                FloatVector e1 = FloatVector.fromMemorySegment(F, w, g1 + at + HI_SCALE, LE);
                FloatVector d2 = FloatVector.fromMemorySegment(F, w, g2 + at, LE);
                FloatVector e2 = FloatVector.fromMemorySegment(F, w, g2 + at + HI_SCALE, LE);
                FloatVector d3 = FloatVector.fromMemorySegment(F, w, g3 + at, LE);
                FloatVector e3 = FloatVector.fromMemorySegment(F, w, g3 + at + HI_SCALE, LE);
                FloatVector m0 = FloatVector.fromMemorySegment(F, w, g0 + at + SCALES, LE);
                FloatVector n0 = FloatVector.fromMemorySegment(F, w, g0 + at + SCALES + HI_SCALE, LE);
                FloatVector m1 = FloatVector.fromMemorySegment(F, w, g1 + at + SCALES, LE);
                FloatVector n1 = FloatVector.fromMemorySegment(F, w, g1 + at + SCALES + HI_SCALE, LE);
                FloatVector m2 = FloatVector.fromMemorySegment(F, w, g2 + at + SCALES, LE);
                FloatVector n2 = FloatVector.fromMemorySegment(F, w, g2 + at + SCALES + HI_SCALE, LE);
                FloatVector m3 = FloatVector.fromMemorySegment(F, w, g3 + at + SCALES, LE);
                FloatVector n3 = FloatVector.fromMemorySegment(F, w, g3 + at + SCALES + HI_SCALE, LE);
                long codes = at + 2 * SCALES;
                // No helper calls here: this loop's Vector API calls alone exceed C2's inlining node budget
                // (NodeCountInliningCutoff), past which it delays (late-inlines) the API's own methods but refuses
                // a helper, whose vectors would then be boxed: 5 GFLOP/s instead of a hundred.
                for (int j = 0; j < NIBBLE_BLOCK; j++) {
                    long col = codes + (long) j * LANES;
                    FloatVector v = FloatVector.broadcast(F, x[x0 + c + j]);
                    IntVector p0 = (IntVector) ByteVector.fromMemorySegment(B, w, g0 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a0 = ((FloatVector) p0.lanewise(AND, 0xF).convert(I2F, 0)).fma(d0, m0).fma(v, a0);
                    b0 = ((FloatVector) p0.lanewise(LSHR, 4).convert(I2F, 0)).fma(e0, n0).fma(v, b0);
                    IntVector p1 = (IntVector) ByteVector.fromMemorySegment(B, w, g1 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a1 = ((FloatVector) p1.lanewise(AND, 0xF).convert(I2F, 0)).fma(d1, m1).fma(v, a1);
                    b1 = ((FloatVector) p1.lanewise(LSHR, 4).convert(I2F, 0)).fma(e1, n1).fma(v, b1);
                    IntVector p2 = (IntVector) ByteVector.fromMemorySegment(B, w, g2 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a2 = ((FloatVector) p2.lanewise(AND, 0xF).convert(I2F, 0)).fma(d2, m2).fma(v, a2);
                    b2 = ((FloatVector) p2.lanewise(LSHR, 4).convert(I2F, 0)).fma(e2, n2).fma(v, b2);
                    IntVector p3 = (IntVector) ByteVector.fromMemorySegment(B, w, g3 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a3 = ((FloatVector) p3.lanewise(AND, 0xF).convert(I2F, 0)).fma(d3, m3).fma(v, a3);
                    b3 = ((FloatVector) p3.lanewise(LSHR, 4).convert(I2F, 0)).fma(e3, n3).fma(v, b3);
                }
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }
    }

    /**
     * Q4_0: nibble codes 0 to 15 and the file's half-precision scale per row and block; the offset, {@code -8 *
     * scale}, is derived in registers (exactly) rather than stored. That is 4.5 bits a weight, as in the file, against
     * 6 for float scales and offsets, and decoding one token is bound by the bytes it reads. A copy of
     * {@link OffsetNibblePanels}' tiles but for the scales and offsets: tiles shared by both layouts, choosing by a
     * field, ran prompts at two thirds the speed.
     */
    private static final class Q4_0Panels extends NibblePanels {
        /** A group's half-precision scales: an int lane per row pair, as {@link Bf16Panels} keeps its weights. */
        private static final long HALF_SCALES = (long) GROUP * Short.BYTES;
        /**
         * A half in an int's top 16 bits, shifted right by 3 with its sign, has its exponent and mantissa in a float's
         * low exponent and mantissa bits; this mask keeps them and the sign, and clears the sign's copies.
         */
        private static final int HALF_BITS = 0x8FFFE000;
        /** 2^(127 - 15): rebiases a half's exponent placed in a float; exact, subnormals included. */
        private static final float REBIAS = 0x1p112f;

        Q4_0Panels() {
            super(DType.Q4_0, HALF_SCALES);
        }

        /** The half-to-float decoding in the tiles is exact for finite halves only. */
        @Override
        boolean holds(float scale) {
            return Float.isFinite(scale);
        }

        @Override
        void put(MemorySegment out, long at, int r, float scale, float offset, byte[] codes, int from) {
            long to = at + (r % LANES) * (long) Integer.BYTES + (r < LANES ? 0 : Short.BYTES);
            out.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE), to, Float.floatToFloat16(scale));
            putCodes(out, at, r, codes, from);
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
            for (int c = 0; c < k; c += NIBBLE_BLOCK) {
                long at = group + c / NIBBLE_BLOCK * blockBytes;
                // Each half moved into a float's sign and low exponent and mantissa bits, then rebiased: exact.
                IntVector halves = IntVector.fromMemorySegment(I, w, at, LE);
                FloatVector dLo = halves.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector dHi = halves.lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector mLo = dLo.mul(-8f);
                FloatVector mHi = dHi.mul(-8f);
                long codes = at + HALF_SCALES;
                for (int j = 0; j < NIBBLE_BLOCK; j++) {
                    IntVector pair = nibbles(w, codes + (long) j * LANES);
                    FloatVector lo = lo(pair).fma(dLo, mLo);
                    FloatVector hi = hi(pair).fma(dHi, mHi);
                    int i = c + j;
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
            }
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
            for (int c = 0; c < k; c += NIBBLE_BLOCK) {
                long at = group + c / NIBBLE_BLOCK * blockBytes;
                // Each half moved into a float's sign and low exponent and mantissa bits, then rebiased: exact.
                IntVector halves = IntVector.fromMemorySegment(I, w, at, LE);
                FloatVector dLo = halves.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector dHi = halves.lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector mLo = dLo.mul(-8f);
                FloatVector mHi = dHi.mul(-8f);
                long codes = at + HALF_SCALES;
                for (int j = 0; j < NIBBLE_BLOCK; j++) {
                    IntVector pair = nibbles(w, codes + (long) j * LANES);
                    FloatVector lo = lo(pair).fma(dLo, mLo);
                    FloatVector hi = hi(pair).fma(dHi, mHi);
                    int i = c + j;
                    FloatVector v;
                    v = FloatVector.broadcast(F, x[o0 + i]); a0 = lo.fma(v, a0); b0 = hi.fma(v, b0);
                    v = FloatVector.broadcast(F, x[o1 + i]); a1 = lo.fma(v, a1); b1 = hi.fma(v, b1);
                    v = FloatVector.broadcast(F, x[o2 + i]); a2 = lo.fma(v, a2); b2 = hi.fma(v, b2);
                    v = FloatVector.broadcast(F, x[o3 + i]); a3 = lo.fma(v, a3); b3 = hi.fma(v, b3);
                }
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }

        @Override
        void tile1(MemorySegment w, long g0, long g1, long g2, long g3, int k, float[] x, int x0, float[] acc) {
            FloatVector zero = FloatVector.zero(F);
            FloatVector a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            for (int c = 0; c < k; c += NIBBLE_BLOCK) {
                long at = c / NIBBLE_BLOCK * blockBytes;
                IntVector h0 = IntVector.fromMemorySegment(I, w, g0 + at, LE);
                FloatVector d0 = h0.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector e0 = h0.lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                IntVector h1 = IntVector.fromMemorySegment(I, w, g1 + at, LE);
                FloatVector d1 = h1.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector e1 = h1.lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                IntVector h2 = IntVector.fromMemorySegment(I, w, g2 + at, LE);
                FloatVector d2 = h2.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector e2 = h2.lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                IntVector h3 = IntVector.fromMemorySegment(I, w, g3 + at, LE);
                FloatVector d3 = h3.lanewise(LSHL, 16).lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector e3 = h3.lanewise(ASHR, 3).lanewise(AND, HALF_BITS).reinterpretAsFloats().mul(REBIAS);
                FloatVector m0 = d0.mul(-8f);
                FloatVector n0 = e0.mul(-8f);
                FloatVector m1 = d1.mul(-8f);
                FloatVector n1 = e1.mul(-8f);
                FloatVector m2 = d2.mul(-8f);
                FloatVector n2 = e2.mul(-8f);
                FloatVector m3 = d3.mul(-8f);
                FloatVector n3 = e3.mul(-8f);
                long codes = at + HALF_SCALES;
                // No helper calls here: this loop's Vector API calls alone exceed C2's inlining node budget
                // (NodeCountInliningCutoff), past which it delays (late-inlines) the API's own methods but refuses
                // a helper, whose vectors would then be boxed: 5 GFLOP/s instead of a hundred.
                for (int j = 0; j < NIBBLE_BLOCK; j++) {
                    long col = codes + (long) j * LANES;
                    FloatVector v = FloatVector.broadcast(F, x[x0 + c + j]);
                    IntVector p0 = (IntVector) ByteVector.fromMemorySegment(B, w, g0 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a0 = ((FloatVector) p0.lanewise(AND, 0xF).convert(I2F, 0)).fma(d0, m0).fma(v, a0);
                    b0 = ((FloatVector) p0.lanewise(LSHR, 4).convert(I2F, 0)).fma(e0, n0).fma(v, b0);
                    IntVector p1 = (IntVector) ByteVector.fromMemorySegment(B, w, g1 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a1 = ((FloatVector) p1.lanewise(AND, 0xF).convert(I2F, 0)).fma(d1, m1).fma(v, a1);
                    b1 = ((FloatVector) p1.lanewise(LSHR, 4).convert(I2F, 0)).fma(e1, n1).fma(v, b1);
                    IntVector p2 = (IntVector) ByteVector.fromMemorySegment(B, w, g2 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a2 = ((FloatVector) p2.lanewise(AND, 0xF).convert(I2F, 0)).fma(d2, m2).fma(v, a2);
                    b2 = ((FloatVector) p2.lanewise(LSHR, 4).convert(I2F, 0)).fma(e2, n2).fma(v, b2);
                    IntVector p3 = (IntVector) ByteVector.fromMemorySegment(B, w, g3 + col, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
                    a3 = ((FloatVector) p3.lanewise(AND, 0xF).convert(I2F, 0)).fma(d3, m3).fma(v, a3);
                    b3 = ((FloatVector) p3.lanewise(LSHR, 4).convert(I2F, 0)).fma(e3, n3).fma(v, b3);
                }
            }
            a0.intoArray(acc, 0 * GROUP); b0.intoArray(acc, 0 * GROUP + LANES);
            a1.intoArray(acc, 1 * GROUP); b1.intoArray(acc, 1 * GROUP + LANES);
            a2.intoArray(acc, 2 * GROUP); b2.intoArray(acc, 2 * GROUP + LANES);
            a3.intoArray(acc, 3 * GROUP); b3.intoArray(acc, 3 * GROUP + LANES);
        }
    }
}
