package io.flover.kernels.cpu;

import io.flover.kernels.Backend;
import io.flover.kernels.StepIndex;
import io.flover.model.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The CPU backend: {@link CpuKernels} over heap float arrays; matmul weights are packed once ({@link PackedMatrix}),
 * embedding tables read in place from the memory map. The
 * kernels (and their threads) belong to whoever made them, and may be shared by several backends as long as they
 * take turns, unless the backend was made {@link #owning} them.
 */
public final class CpuBackend implements Backend {
    private record HostBuffer(float[] array) implements Buffer {
    }

    /**
     * A weight in place, for lookups, and packed into tiles when it is a matmul's: packed at load, so that the
     * first request does not pay for it; an embedding table that is not also the head is never packed.
     */
    private record HostMatrix(Tensor tensor, PackedMatrix packedOrNull) implements Matrix {
        PackedMatrix packed() {
            if (packedOrNull == null) {
                throw new IllegalStateException(tensor.name() + " was loaded as a lookup table, not a matmul weight");
            }
            return packedOrNull;
        }

        @Override
        public int rows() {
            return tensor.rows();
        }

        @Override
        public int cols() {
            return tensor.cols();
        }
    }

    private record HostVector(float[] values) implements Vector {
        @Override
        public int length() {
            return values.length;
        }
    }

    private static final class HostForward implements Forward {
        private final StepIndex index;
        private final CpuKvCache kv;
        /** RoPE's angles for the step's positions, made by the first layer's rotation. */
        private Rope.Angles angles;

        HostForward(StepIndex index, CpuKvCache kv) {
            this.index = index;
            this.kv = kv;
        }

        @Override
        public StepIndex index() {
            return index;
        }

        CpuKvCache kv() {
            return kv;
        }

        Rope.Angles angles(float[] invFreq) {
            if (angles == null || !angles.of(invFreq)) {
                int[] positions = index.positions();
                angles = new Rope.Angles(invFreq, positions, positions.length);
            }
            return angles;
        }

        @Override
        public Buffer buffer(int floats) {
            return new HostBuffer(new float[floats]);
        }

        @Override
        public void close() {
        }
    }

    private final CpuKernels k;
    private final boolean owned;

    /** A backend over {@code kernels}, which stay the caller's to close. */
    public CpuBackend(CpuKernels kernels) {
        this(kernels, false);
    }

    private CpuBackend(CpuKernels kernels, boolean owned) {
        this.k = kernels;
        this.owned = owned;
    }

    /**
     * A backend over kernels of its own on {@code threads} threads, stopped when it is closed. The kernels are
     * warmed up first ({@link WarmUp}): a server meets every batch shape, and should meet none of them cold. That
     * takes seconds (15 to 28 s on this project's 2 busy cores), most of it the Vector API running interpreted
     * until the JIT compiles it: time every first request would otherwise pay.
     */
    public static CpuBackend owning(int threads) {
        CpuKernels kernels = new CpuKernels(threads);
        kernels.warmUp();
        return new CpuBackend(kernels, true);
    }

    /** The kernels it runs, for benchmarks of one kernel alone. */
    public CpuKernels kernels() {
        return k;
    }

    @Override
    public String device() {
        return "cpu";
    }

    @Override
    public Matrix matrix(Tensor w) {
        return new HostMatrix(w, PackedMatrix.of(w));
    }

    @Override
    public Matrix table(Tensor w) {
        return new HostMatrix(w, null);
    }

    @Override
    public Vector vector(float[] values) {
        return new HostVector(values);
    }

    @Override
    public KvCache kvCache(int layers, int numBlocks, int blockSize, int kvHeads, int headDim) {
        return new CpuKvCache(layers, numBlocks, blockSize, kvHeads, headDim);
    }

    @Override
    public Forward forward(StepIndex index, KvCache kv) {
        return new HostForward(index, (CpuKvCache) kv);
    }

    @Override
    public void embedding(Forward step, Matrix table, int firstId, Buffer out) {
        int[] ids = step.index().ids();
        k.embedding(tensor(table), firstId, ids, ids.length, a(out));
    }

    @Override
    public void positionEmbedding(Forward step, Matrix table, Buffer out) {
        int[] positions = step.index().positions();
        k.embedding(tensor(table), 0, positions, positions.length, a(out));
    }

    @Override
    public void matmul(Buffer x, int rows, Matrix w, Buffer out) {
        k.matmul(a(x), rows, ((HostMatrix) w).packed(), a(out));
    }

    @Override
    public void matmul(Buffer x, int rows, Matrix[] w, Buffer[] out) {
        PackedMatrix[] packed = new PackedMatrix[w.length];
        float[][] outs = new float[w.length][];
        for (int i = 0; i < w.length; i++) {
            packed[i] = ((HostMatrix) w[i]).packed();
            outs[i] = a(out[i]);
        }
        k.matmul(a(x), rows, packed, outs);
    }

    @Override
    public void rmsNorm(Buffer x, Buffer out, int rows, Vector weight, float eps) {
        k.rmsNorm(a(x), a(out), rows, v(weight), eps);
    }

    @Override
    public void layerNorm(Buffer x, Buffer out, int rows, Vector weight, Vector bias, float eps) {
        k.layerNorm(a(x), a(out), rows, v(weight), v(bias), eps);
    }

    @Override
    public void addBias(Buffer x, int rows, Vector bias) {
        k.addBias(a(x), rows, v(bias));
    }

    @Override
    public void add(Buffer acc, Buffer x, int n) {
        k.add(a(acc), a(x), n);
    }

    @Override
    public void swiglu(Buffer gate, Buffer up, int n) {
        k.swiglu(a(gate), a(up), n);
    }

    @Override
    public void geluNew(Buffer x, int n) {
        k.geluNew(a(x), n);
    }

    @Override
    public void rope(Forward step, Buffer x, int heads, Vector invFreq) {
        ((HostForward) step).angles(v(invFreq)).rotate(a(x), 0, heads);
    }

    @Override
    public void writeKv(Forward step, int layer, Buffer k, Buffer v) {
        HostForward s = (HostForward) step;
        int[] positions = s.index().positions();
        int[][] tables = s.index().blockTables();
        int width = s.kv().rowWidth();
        for (int t = 0; t < positions.length; t++) {
            s.kv().write(layer, tables[t], positions[t], a(k), t * width, a(v), t * width);
        }
    }

    @Override
    public void attention(Forward step, Buffer q, Buffer out, int layer, int heads) {
        HostForward s = (HostForward) step;
        StepIndex index = s.index();
        k.attention(a(q), a(out), index.tokens(), index.positions(), index.blockTables(), s.kv(), layer, heads);
    }

    @Override
    public void gatherLogitRows(Forward step, Buffer x, int d, Buffer out) {
        int[] tokens = step.index().logitTokens();
        for (int r = 0; r < tokens.length; r++) {
            System.arraycopy(a(x), tokens[r] * d, a(out), r * d, d);
        }
    }

    @Override
    public void argmaxRows(Buffer x, int rows, int width, int[] ids, float[] maxima) {
        float[] a = a(x);
        for (int r = 0; r < rows; r++) {
            ids[r] = CpuKernels.argmax(a, r * width, width);
            float v = width == 0 ? Float.NEGATIVE_INFINITY : a[r * width + ids[r]];
            maxima[r] = v > Float.NEGATIVE_INFINITY ? v : Float.NEGATIVE_INFINITY;
        }
    }

    @Override
    public float[] toHost(Buffer b, int n) {
        return a(b);
    }

    @Override
    public MemorySegment hostSegment(Buffer b, int n) {
        return MemorySegment.ofArray(a(b)).asSlice(0, (long) n * Float.BYTES);
    }

    @Override
    public void fromHost(MemorySegment host, Buffer b, int n) {
        float[] array = a(b);
        if (host.heapBase().orElse(null) != array || host.address() != 0) {
            MemorySegment.copy(host, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, array, 0, n);
        }
    }

    @Override
    public void close() {
        if (owned) {
            k.close();
        }
    }

    private static float[] a(Buffer b) {
        return ((HostBuffer) b).array();
    }

    private static float[] v(Vector v) {
        return ((HostVector) v).values();
    }

    private static Tensor tensor(Matrix m) {
        return ((HostMatrix) m).tensor();
    }
}
