package io.flover.kernels.cpu;


import io.flover.model.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The tensor operations of a transformer forward on the CPU. Activations are row-major float arrays with one
 * row per token of the step; a matmul's weights are a {@link PackedMatrix}, packed once when a model loads, and
 * embedding tables are {@link Tensor}s of any supported dtype, read in place.
 * One instance owns the worker threads its operations run on: {@code threads() - 1} daemon helpers plus the
 * calling thread, which takes a share of every parallel loop.
 *
 * <p>Operations are vectorised with the Vector API and accumulate in float32, so results differ from a
 * sequential scalar loop by float reordering only. An instance is not thread-safe: call it from one thread at
 * a time (calls from different threads need a happens-before edge between them, as any handoff provides).
 * {@link #close()} stops the helpers; several instances may coexist, each with its own helpers.
 */
public final class CpuKernels implements AutoCloseable {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int LANES = F.length();
    /** Weight bytes of a block of groups, re-read by every token tile: small enough to stay in L2. */
    private static final long BLOCK_BYTES = 256 * 1024;
    /** Parallel loops are cut into about this many chunks per thread, for load balance on a noisy machine. */
    private static final int CHUNKS_PER_THREAD = 8;
    /** Work (multiply-adds or elements) below which a chunk is not worth handing to another thread. */
    private static final long MIN_CHUNK_WORK = 1 << 15;
    /** Work of an element of swiglu or geluNew, in units of an add: an exp or tanh costs about that much. */
    private static final long TRANSCENDENTAL_WORK = 8;
    private static final AtomicInteger INSTANCES = new AtomicInteger();

    private final int threads;
    private final WorkerPool pool;
    /** Per-participant scratch (attention scores, widened weights); slot {@code w} is only used by worker w. */
    private final float[][] scratch;
    /** Per-participant attention row offsets, like {@link #scratch}. */
    private final int[][] rowScratch;

    public CpuKernels(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.pool = new WorkerPool(threads, "flover-kernels-" + INSTANCES.incrementAndGet());
        this.scratch = new float[threads][];
        this.rowScratch = new int[threads][];
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs every kernel path on made-up data until the JIT has compiled it ({@link WarmUp}). Compiled code is the
     * JVM's: once one instance is warm, so is every other.
     */
    public void warmUp() {
        WarmUp.run(this);
    }

    /** The helper threads, for tests. */
    List<Thread> helperThreads() {
        return pool.helperThreads();
    }

    /**
     * {@code out[t][n] = sum_k x[t][k] * w[n][k]} for every token {@code t < tokens}, accumulated in float32 by
     * fused multiply-adds in the order {@code k = 0, 1, ...}: the same for every row whatever the batch. Output rows
     * are spread over the threads by whole groups.
     */
    public void matmul(float[] x, int tokens, PackedMatrix w, float[] out) {
        matmul(x, tokens, new PackedMatrix[] {w}, new float[][] {out});
    }

    /**
     * {@link #matmul(float[], int, PackedMatrix, float[])} of one {@code x} by each {@code w[i]} into
     * {@code out[i]}, in one parallel loop over all their groups (Q, K and V; gate and up): one hand-off to the
     * helpers and one wait for the slowest instead of one per weight.
     */
    public void matmul(float[] x, int tokens, PackedMatrix[] w, float[][] out) {
        int k = w[0].cols();
        int[] firstGroup = new int[w.length + 1];
        for (int i = 0; i < w.length; i++) {
            if (w[i].cols() != k) {
                throw new IllegalArgumentException("weights of one matmul must have the same columns: " + k
                        + " and " + w[i].cols());
            }
            Objects.checkFromIndexSize(0, tokens * w[i].rows(), out[i].length);
            firstGroup[i + 1] = firstGroup[i] + w[i].groups();
        }
        Objects.checkFromIndexSize(0, tokens * k, x.length);
        if (tokens == 0) {
            return;
        }
        // One token reads four groups at a time (tile1): chunks of whole quads keep its four streams.
        int align = tokens == 1 ? 4 : 1;
        parallelFor(firstGroup[w.length], align, (long) PanelFormat.GROUP * k * tokens, (worker, from, to) -> {
            for (int i = 0; i < w.length; i++) {
                int lo = Math.max(from, firstGroup[i]);
                int hi = Math.min(to, firstGroup[i + 1]);
                if (lo < hi) {
                    matmulGroups(x, tokens, w[i], out[i], lo - firstGroup[i], hi - firstGroup[i], worker);
                }
            }
        });
    }

    /**
     * Groups {@code [from, to)} of a matmul. A block of groups small enough to stay in L2 is run by every token
     * tile in turn, so it is read from memory once; a tile's x rows stay in L1 while it runs the block.
     */
    private void matmulGroups(float[] x, int tokens, PackedMatrix w, float[] out, int from, int to, int worker) {
        PanelFormat format = w.format();
        MemorySegment data = w.data();
        int n = w.rows();
        int k = w.cols();
        long groupBytes = w.groupBytes();
        // A single token re-reads nothing: then the whole range is one block.
        int blockGroups = tokens == 1 ? to - from : (int) Math.max(1, BLOCK_BYTES / groupBytes);
        float[] acc = scratch(worker, PanelFormat.MAX_TILE * PanelFormat.GROUP);
        for (int block = from; block < to; block += blockGroups) {
            int blockEnd = Math.min(to, block + blockGroups);
            for (int t = 0, tile; t < tokens; t += tile) {
                int left = tokens - t;
                // The widest tile that is at least two thirds full: the others repeat their last token.
                tile = left >= 8 ? Math.min(left, PanelFormat.MAX_TILE) : left >= 2 ? Math.min(left, 4) : 1;
                if (tile == 1) {
                    // Four groups per call; a last partial quad repeats its last group, which is not stored twice.
                    for (int g = block; g < blockEnd; g += 4) {
                        int last = blockEnd - 1;
                        format.tile1(data, g * groupBytes, Math.min(g + 1, last) * groupBytes,
                                Math.min(g + 2, last) * groupBytes, Math.min(g + 3, last) * groupBytes, k, x, t * k,
                                acc);
                        for (int q = 0; q < Math.min(4, blockEnd - g); q++) {
                            store(acc, q, out, t, n, g + q);
                        }
                    }
                    continue;
                }
                for (int g = block; g < blockEnd; g++) {
                    long at = g * groupBytes;
                    if (tile > 4) {
                        format.tile12(data, at, k, x, t * k, tile, acc);
                    } else {
                        format.tile4(data, at, k, x, t * k, tile, acc);
                    }
                    for (int c = 0; c < tile; c++) {
                        store(acc, c, out, t + c, n, g);
                    }
                }
            }
        }
    }

    /** Copies slot {@code slot} of a tile's accumulators, group {@code g}'s rows of token {@code t}, into {@code out}. */
    private static void store(float[] acc, int slot, float[] out, int t, int n, int g) {
        int row = g * PanelFormat.GROUP;
        System.arraycopy(acc, slot * PanelFormat.GROUP, out, t * n + row, Math.min(PanelFormat.GROUP, n - row));
    }

    /**
     * Copies row {@code ids[t] - firstId} of {@code table} into row {@code t} of {@code out}, and zeros for ids the
     * table does not hold: with a vocabulary split across ranks, each rank holds rows {@code [firstId, firstId +
     * rows)} and a sum over ranks completes the lookup.
     */
    public void embedding(Tensor table, int firstId, int[] ids, int tokens, float[] out) {
        int d = table.cols();
        for (int t = 0; t < tokens; t++) {
            int row = ids[t] - firstId;
            if (row >= 0 && row < table.rows()) {
                table.copyTo((long) row * d, out, t * d, d);
            } else {
                Arrays.fill(out, t * d, (t + 1) * d, 0f);
            }
        }
    }

    /** RMSNorm of each row of {@code x} (width {@code weight.length}) into {@code out}. */
    public void rmsNorm(float[] x, float[] out, int tokens, float[] weight, float eps) {
        int d = weight.length;
        parallelFor(tokens, 1, d, (worker, from, to) -> {
            for (int t = from; t < to; t++) {
                rmsNormRow(x, out, t * d, weight, eps);
            }
        });
    }

    private static void rmsNormRow(float[] x, float[] out, int base, float[] weight, float eps) {
        int d = weight.length;
        int vec = F.loopBound(d);
        FloatVector acc = FloatVector.zero(F);
        for (int i = 0; i < vec; i += LANES) {
            FloatVector v = FloatVector.fromArray(F, x, base + i);
            acc = v.fma(v, acc);
        }
        double ss = VectorMath.sum(acc);
        for (int i = vec; i < d; i++) {
            ss += x[base + i] * x[base + i];
        }
        float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
        for (int i = 0; i < vec; i += LANES) {
            FloatVector.fromArray(F, x, base + i).mul(inv).mul(FloatVector.fromArray(F, weight, i))
                    .intoArray(out, base + i);
        }
        for (int i = vec; i < d; i++) {
            out[base + i] = x[base + i] * inv * weight[i];
        }
    }

    /** LayerNorm of each row of {@code x} (width {@code weight.length}) into {@code out}. */
    public void layerNorm(float[] x, float[] out, int tokens, float[] weight, float[] bias, float eps) {
        int d = weight.length;
        parallelFor(tokens, 1, d, (worker, from, to) -> {
            for (int t = from; t < to; t++) {
                layerNormRow(x, out, t * d, weight, bias, eps);
            }
        });
    }

    private static void layerNormRow(float[] x, float[] out, int base, float[] weight, float[] bias, float eps) {
        int d = weight.length;
        int vec = F.loopBound(d);
        FloatVector acc = FloatVector.zero(F);
        for (int i = 0; i < vec; i += LANES) {
            acc = acc.add(FloatVector.fromArray(F, x, base + i));
        }
        float sum = VectorMath.sum(acc);
        for (int i = vec; i < d; i++) {
            sum += x[base + i];
        }
        float mean = sum / d;
        // Two passes: the variance of centred values does not cancel catastrophically.
        acc = FloatVector.zero(F);
        for (int i = 0; i < vec; i += LANES) {
            FloatVector c = FloatVector.fromArray(F, x, base + i).sub(mean);
            acc = c.fma(c, acc);
        }
        float var = VectorMath.sum(acc);
        for (int i = vec; i < d; i++) {
            float c = x[base + i] - mean;
            var += c * c;
        }
        float inv = (float) (1.0 / Math.sqrt((double) var / d + eps));
        for (int i = 0; i < vec; i += LANES) {
            FloatVector.fromArray(F, x, base + i).sub(mean).mul(inv).mul(FloatVector.fromArray(F, weight, i))
                    .add(FloatVector.fromArray(F, bias, i))
                    .intoArray(out, base + i);
        }
        for (int i = vec; i < d; i++) {
            out[base + i] = (x[base + i] - mean) * inv * weight[i] + bias[i];
        }
    }

    /** {@code gate[i] = silu(gate[i]) * up[i]} for {@code i < n}. */
    public void swiglu(float[] gate, float[] up, int n) {
        Objects.checkFromIndexSize(0, n, gate.length);
        Objects.checkFromIndexSize(0, n, up.length);
        parallelFor(n, LANES, TRANSCENDENTAL_WORK, (worker, from, to) -> {
            int i = from;
            for (int end = from + F.loopBound(to - from); i < end; i += LANES) {
                FloatVector g = FloatVector.fromArray(F, gate, i);
                g.div(VectorMath.exp(g.neg()).add(1f)).mul(FloatVector.fromArray(F, up, i)).intoArray(gate, i);
            }
            if (i < to) { // masked, not scalar: an element gets the same arithmetic wherever the chunks cut
                VectorMask<Float> m = F.indexInRange(i, to);
                FloatVector g = FloatVector.fromArray(F, gate, i, m);
                g.div(VectorMath.exp(g.neg()).add(1f)).mul(FloatVector.fromArray(F, up, i, m)).intoArray(gate, i, m);
            }
        });
    }

    /** GPT-2's tanh approximation of GELU, in place on {@code x[0..n)}. */
    public void geluNew(float[] x, int n) {
        Objects.checkFromIndexSize(0, n, x.length);
        final float c = (float) Math.sqrt(2 / Math.PI);
        parallelFor(n, LANES, TRANSCENDENTAL_WORK, (worker, from, to) -> {
            // 0.5 v (1 + tanh u) as v / (1 + e^-2u): the same function, without 1 + tanh u cancelling for large
            // negative v.
            int i = from;
            for (int end = from + F.loopBound(to - from); i < end; i += LANES) {
                FloatVector v = FloatVector.fromArray(F, x, i);
                FloatVector u = v.mul(0.044715f).mul(v).mul(v).add(v).mul(c);
                v.div(VectorMath.exp(u.mul(-2f)).add(1f)).intoArray(x, i);
            }
            if (i < to) { // masked, as in swiglu
                VectorMask<Float> m = F.indexInRange(i, to);
                FloatVector v = FloatVector.fromArray(F, x, i, m);
                FloatVector u = v.mul(0.044715f).mul(v).mul(v).add(v).mul(c);
                v.div(VectorMath.exp(u.mul(-2f)).add(1f)).intoArray(x, i, m);
            }
        });
    }

    /** {@code acc[i] += x[i]} for {@code i < n}: the residual connection. */
    public void add(float[] acc, float[] x, int n) {
        Objects.checkFromIndexSize(0, n, acc.length);
        Objects.checkFromIndexSize(0, n, x.length);
        parallelFor(n, LANES, 1, (worker, from, to) -> addRange(acc, from, x, from, to - from));
    }

    /** Adds {@code bias} to every row of {@code x}. */
    public void addBias(float[] x, int tokens, float[] bias) {
        int d = bias.length;
        Objects.checkFromIndexSize(0, tokens * d, x.length);
        parallelFor(tokens, 1, d, (worker, from, to) -> {
            for (int t = from; t < to; t++) {
                addRange(x, t * d, bias, 0, d);
            }
        });
    }

    private static void addRange(float[] acc, int accOffset, float[] x, int xOffset, int n) {
        int vec = F.loopBound(n);
        for (int i = 0; i < vec; i += LANES) {
            FloatVector.fromArray(F, acc, accOffset + i).add(FloatVector.fromArray(F, x, xOffset + i))
                    .intoArray(acc, accOffset + i);
        }
        for (int i = vec; i < n; i++) {
            acc[accOffset + i] += x[xOffset + i];
        }
    }

    /**
     * Causal attention of a flat token batch over the paged KV cache of layer {@code layer}. Token {@code t}
     * (query row {@code q[t]}, {@code heads * headDim} wide) belongs to the sequence whose block table is
     * {@code blockTables[t]}, sits at {@code positions[t]} and attends to that sequence's positions
     * {@code 0..positions[t]}, whose K/V rows must already be in the cache. Query head {@code h} reads KV head
     * {@code h / (heads / kvHeads)} (grouped-query attention). Writes {@code out[t]}, same shape as {@code q}.
     */
    public void attention(float[] q, float[] out, int tokens, int[] positions, int[][] blockTables,
                          CpuKvCache kv, int layer, int heads) {
        int hd = kv.headDim();
        Objects.checkFromIndexSize(0, tokens * heads * hd, q.length);
        Objects.checkFromIndexSize(0, tokens * heads * hd, out.length);
        long work = 0;
        for (int t = 0; t < tokens; t++) {
            work += (long) (positions[t] + 1) * heads * hd * 2;
        }
        // Parallel over (token, head) pairs, whose lengths differ: the dynamic chunking evens that out. Pairs are
        // numbered head-major so that a chunk runs the tokens of one head, whose K/V rows then stay in L2.
        int pairs = tokens * heads;
        parallelFor(pairs, 1, work / Math.max(1, pairs), (worker, from, to) -> {
            for (int pair = from; pair < to; pair++) {
                int t = pair % tokens;
                attendHead(worker, q, out, t, pair / tokens, heads, positions[t] + 1, blockTables[t], kv, layer);
            }
        });
    }

    private void attendHead(int worker, float[] q, float[] out, int t, int h, int heads, int len, int[] table,
                            CpuKvCache kv, int layer) {
        int hd = kv.headDim();
        int qBase = (t * heads + h) * hd;
        float[] s = scratch(worker, len);
        int[] rows = rowScratch(worker, len);
        // Offsets of this head's K/V row per position, walking the block table once.
        int blockSize = kv.blockSize();
        int rowWidth = kv.rowWidth();
        int kvOffset = h / (heads / kv.kvHeads()) * hd;
        for (int p = 0, block = 0; p < len; block++) {
            int row = table[block] * blockSize * rowWidth + kvOffset;
            for (int end = Math.min(len, p + blockSize); p < end; p++, row += rowWidth) {
                rows[p] = row;
            }
        }

        scores(q, qBase, kv.keys(layer), rows, len, hd, s);
        float scale = (float) (1.0 / Math.sqrt(hd));
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < len; p++) {
            s[p] *= scale;
            max = Math.max(max, s[p]);
        }
        float sum = expShifted(s, len, max);
        for (int p = 0; p < len; p++) {
            s[p] /= sum;
        }
        weightedSum(kv.values(layer), rows, s, len, hd, out, qBase);
    }

    /**
     * {@code s[p] = dot(q, keys[rows[p]..])} over {@code hd}. Four positions at a time, so that their horizontal
     * sums share one reduction: with {@code hd} of 64, a position is only 4 FMAs and the sums would dominate.
     */
    private static void scores(float[] q, int qBase, float[] keys, int[] rows, int len, int hd, float[] s) {
        int vec = F.loopBound(hd);
        int p = 0;
        for (; p + 4 <= len && vec > 0; p += 4) {
            int r0 = rows[p];
            int r1 = rows[p + 1];
            int r2 = rows[p + 2];
            int r3 = rows[p + 3];
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int i = 0; i < vec; i += LANES) {
                FloatVector qi = FloatVector.fromArray(F, q, qBase + i);
                a0 = FloatVector.fromArray(F, keys, r0 + i).fma(qi, a0);
                a1 = FloatVector.fromArray(F, keys, r1 + i).fma(qi, a1);
                a2 = FloatVector.fromArray(F, keys, r2 + i).fma(qi, a2);
                a3 = FloatVector.fromArray(F, keys, r3 + i).fma(qi, a3);
            }
            Reduce.sum4(a0, a1, a2, a3, s, p);
        }
        for (; p < len; p++) {
            FloatVector a = FloatVector.zero(F);
            for (int i = 0; i < vec; i += LANES) {
                a = FloatVector.fromArray(F, keys, rows[p] + i).fma(FloatVector.fromArray(F, q, qBase + i), a);
            }
            s[p] = VectorMath.sum(a);
        }
        for (int i = vec; i < hd; i++) {
            for (p = 0; p < len; p++) {
                s[p] += q[qBase + i] * keys[rows[p] + i];
            }
        }
    }

    /**
     * {@code out[base..base+hd) = sum_p weights[p] * values[rows[p]..]}, keeping a group of up to 4 vectors of
     * the head in registers across all positions rather than loading and storing {@code out} for each.
     */
    private static void weightedSum(float[] values, int[] rows, float[] weights, int len, int hd, float[] out,
                                    int base) {
        int vec = F.loopBound(hd);
        int i = 0;
        for (; i + 4 * LANES <= vec; i += 4 * LANES) {
            FloatVector o0 = FloatVector.zero(F);
            FloatVector o1 = o0;
            FloatVector o2 = o0;
            FloatVector o3 = o0;
            for (int p = 0; p < len; p++) {
                FloatVector w = FloatVector.broadcast(F, weights[p]);
                int r = rows[p] + i;
                o0 = FloatVector.fromArray(F, values, r).fma(w, o0);
                o1 = FloatVector.fromArray(F, values, r + LANES).fma(w, o1);
                o2 = FloatVector.fromArray(F, values, r + 2 * LANES).fma(w, o2);
                o3 = FloatVector.fromArray(F, values, r + 3 * LANES).fma(w, o3);
            }
            o0.intoArray(out, base + i);
            o1.intoArray(out, base + i + LANES);
            o2.intoArray(out, base + i + 2 * LANES);
            o3.intoArray(out, base + i + 3 * LANES);
        }
        for (; i < vec; i += LANES) {
            FloatVector o = FloatVector.zero(F);
            for (int p = 0; p < len; p++) {
                o = FloatVector.fromArray(F, values, rows[p] + i).fma(FloatVector.broadcast(F, weights[p]), o);
            }
            o.intoArray(out, base + i);
        }
        for (; i < hd; i++) {
            float o = 0;
            for (int p = 0; p < len; p++) {
                o += weights[p] * values[rows[p] + i];
            }
            out[base + i] = o;
        }
    }

    /** {@code s[p] = exp(s[p] - max)} for {@code p < len}; returns their sum. */
    private static float expShifted(float[] s, int len, float max) {
        int p = 0;
        for (int end = F.loopBound(len); p < end; p += LANES) {
            VectorMath.exp(FloatVector.fromArray(F, s, p).sub(max)).intoArray(s, p);
        }
        if (p < len) {
            VectorMask<Float> m = F.indexInRange(p, len);
            VectorMath.exp(FloatVector.fromArray(F, s, p, m).sub(max)).intoArray(s, p, m);
        }
        // Summed in position order: a few adds beside the scores' dot products, and no vector reduction.
        float sum = 0;
        for (int q = 0; q < len; q++) {
            sum += s[q];
        }
        return sum;
    }

    private float[] scratch(int worker, int length) {
        float[] s = scratch[worker];
        if (s == null || s.length < length) {
            s = new float[Math.max(length, s == null ? 1024 : 2 * s.length)];
            scratch[worker] = s;
        }
        return s;
    }

    private int[] rowScratch(int worker, int length) {
        int[] s = rowScratch[worker];
        if (s == null || s.length < length) {
            s = new int[Math.max(length, s == null ? 1024 : 2 * s.length)];
            rowScratch[worker] = s;
        }
        return s;
    }

    /**
     * Index of the largest of {@code x[offset..offset+n)}: the lowest index wins a tie, a NaN (a broken
     * checkpoint's logit) is never chosen, and 0 when nothing is above -infinity. Every backend's argmax follows it.
     */
    public static int argmax(float[] x, int offset, int n) {
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            if (x[offset + i] > bestValue) {
                bestValue = x[offset + i];
                best = i;
            }
        }
        return best;
    }

    @FunctionalInterface
    private interface RangeTask {
        void run(int worker, int from, int to);
    }

    /**
     * Runs {@code body} over {@code [0, units)} cut into chunks of whole multiples of {@code align} units, as
     * many as the work ({@code workPerUnit} per unit) pays for, up to {@link #CHUNKS_PER_THREAD} per thread.
     */
    private void parallelFor(int units, int align, long workPerUnit, RangeTask body) {
        if (units <= 0) {
            return;
        }
        int groups = Math.ceilDiv(units, align);
        long byWork = Math.max(1, (long) groups * align * workPerUnit / MIN_CHUNK_WORK);
        int chunks = (int) Math.min(Math.min(groups, byWork), (long) threads * CHUNKS_PER_THREAD);
        int per = Math.ceilDiv(groups, chunks) * align;
        pool.forEach(Math.ceilDiv(units, per),
                (worker, c) -> body.run(worker, c * per, Math.min(units, (c + 1) * per)));
    }

    /** Stops the helper threads; the instance is unusable afterwards. Idempotent. */
    @Override
    public void close() {
        pool.close();
    }
}
