package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.TestData.assertClose;
import static io.flover.kernels.cpu.TestData.floats;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.kernels.Backend;
import io.flover.kernels.StepIndex;
import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The vectorised, multithreaded kernels against {@link ScalarKernels}, on sizes that are awkward for both. */
class CpuKernelsTest {
    private static final int[] KS = {1, 3, 17, 67, 131, 1000};
    private static final int[] NS = {1, 5, 33, 129};
    private static final int[] TOKENS = {1, 2, 3, 5, 17, 64};
    /** Float32 reordering of a dot product: relative to the sum of the absolute products. */
    private static final double DOT_TOLERANCE = 1e-5;

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void matmulMatchesScalarForAllDtypesAndOddShapes(int threads) {
        SplittableRandom random = new SplittableRandom(threads);
        try (CpuKernels kernels = new CpuKernels(threads); Arena arena = Arena.ofShared()) {
            for (DType dtype : TestData.FLOAT_DTYPES) {
                for (int k : KS) {
                    for (int n : NS) {
                        Tensor w = TestData.tensor(arena, dtype, n, k, floats(random, n * k, 1));
                        for (int tokens : TOKENS) {
                            checkMatmul(kernels, w, floats(random, tokens * k, 2), tokens);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void largeMatmulSpansSeveralRowBlocksAndChunks(int threads) {
        SplittableRandom random = new SplittableRandom(7);
        try (CpuKernels kernels = new CpuKernels(threads); Arena arena = Arena.ofShared()) {
            for (DType dtype : TestData.FLOAT_DTYPES) {
                Tensor w = TestData.tensor(arena, dtype, 1001, 300, floats(random, 1001 * 300, 1));
                checkMatmul(kernels, w, floats(random, 9 * 300, 1), 9);
                Tensor wide = TestData.tensor(arena, dtype, 70, 4099, floats(random, 70 * 4099, 1));
                checkMatmul(kernels, wide, floats(random, 6 * 4099, 1), 6);
            }
        }
    }

    @Test
    void matmulReadsWeightsWithSubnormalsAndSignedZeros() {
        SplittableRandom random = new SplittableRandom(3);
        int n = 8;
        int k = 64;
        try (CpuKernels kernels = new CpuKernels(2); Arena arena = Arena.ofShared()) {
            for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
                short[] bits = new short[n * k];
                for (int i = 0; i < bits.length; i++) {
                    // Mostly subnormal and zero patterns of either sign, some normal ones.
                    int magnitude = i % 3 == 0 ? random.nextInt(0x3C00) : random.nextInt(0x400);
                    bits[i] = (short) (magnitude | (random.nextBoolean() ? 0x8000 : 0));
                }
                float[] x = floats(random, 3 * k, 1e6);
                checkMatmul(kernels, TestData.bits(arena, dtype, n, k, bits), x, 3);
            }
        }
    }

    /**
     * A token's output row is bit for bit the same whatever else shares the call: alone, in every tile width and
     * tile position, on any number of threads.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void matmulRowsDoNotDependOnTheBatch(int threads) {
        SplittableRandom random = new SplittableRandom(11);
        int k = 77;
        try (CpuKernels kernels = new CpuKernels(threads); Arena arena = Arena.ofShared()) {
            for (DType dtype : TestData.FLOAT_DTYPES) {
                int n = 4 * PanelFormat.GROUP + 3;
                PackedMatrix w = PackedMatrix.of(TestData.tensor(arena, dtype, n, k, floats(random, n * k, 1)));
                float[] x = floats(random, 40 * k, 1);
                float[] alone = new float[n];
                for (int tokens : new int[] {2, 3, 4, 5, 8, 11, 12, 13, 17, 25, 40}) {
                    float[] batch = new float[tokens * n];
                    kernels.matmul(x, tokens, w, batch);
                    for (int t = 0; t < tokens; t++) {
                        kernels.matmul(Arrays.copyOfRange(x, t * k, (t + 1) * k), 1, w, alone);
                        assertArrayEquals(alone, Arrays.copyOfRange(batch, t * n, (t + 1) * n),
                                dtype + " token " + t + " of " + tokens);
                    }
                }
            }
        }
    }

    @Test
    void matmulPacksWeightsConfinedToTheCaller() {
        SplittableRandom random = new SplittableRandom(5);
        try (CpuKernels kernels = new CpuKernels(3); Arena arena = Arena.ofConfined()) {
            for (DType dtype : TestData.FLOAT_DTYPES) {
                Tensor w = TestData.tensor(arena, dtype, 301, 77, floats(random, 301 * 77, 1));
                checkMatmul(kernels, w, floats(random, 33 * 77, 1), 33);
            }
        }
    }

    private static void checkMatmul(CpuKernels kernels, Tensor w, float[] x, int tokens) {
        int n = w.rows();
        int k = w.cols();
        float[] expected = new float[tokens * n];
        ScalarKernels.matmul(x, tokens, w, expected);
        float[] actual = new float[tokens * n];
        Arrays.fill(actual, Float.NaN);
        kernels.matmul(x, tokens, PackedMatrix.of(w), actual);
        float[] scales = new float[tokens * n];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int i = 0; i < k; i++) {
                    s += Math.abs((double) x[t * k + i] * w.get((long) j * k + i));
                }
                scales[t * n + j] = (float) s;
            }
        }
        assertClose(w.dtype() + " matmul n=" + n + " k=" + k + " tokens=" + tokens + " threads=" + kernels.threads(),
                expected, actual, expected.length, scales, DOT_TOLERANCE, 1e-30);
    }

    @Test
    void embeddingWidensEveryBitPatternExactly() {
        int d = 256;
        int rows = 65536 / d;
        short[] all = new short[65536];
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) i;
        }
        int[] ids = new int[rows];
        for (int i = 0; i < rows; i++) {
            ids[i] = rows - 1 - i;
        }
        try (CpuKernels kernels = new CpuKernels(2); Arena arena = Arena.ofShared()) {
            for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
                Tensor table = TestData.bits(arena, dtype, rows, d, all);
                float[] expected = new float[rows * d];
                ScalarKernels.embedding(table, ids, rows, expected);
                float[] actual = new float[rows * d];
                kernels.embedding(table, 0, ids, rows, actual);
                for (int i = 0; i < expected.length; i++) {
                    boolean same = Float.floatToRawIntBits(expected[i]) == Float.floatToRawIntBits(actual[i])
                            || Float.isNaN(expected[i]) && Float.isNaN(actual[i]);
                    assertTrue(same, dtype + " element " + i + ": " + expected[i] + " vs " + actual[i]);
                }
            }
        }
    }

    @Test
    void embeddingOfOddWidthsMatchesForAllDtypes() {
        SplittableRandom random = new SplittableRandom(11);
        try (CpuKernels kernels = new CpuKernels(2); Arena arena = Arena.ofShared()) {
            for (DType dtype : TestData.FLOAT_DTYPES) {
                for (int d : new int[] {1, 7, 16, 37, 133}) {
                    Tensor table = TestData.tensor(arena, dtype, 50, d, floats(random, 50 * d, 3));
                    int[] ids = {3, 0, 49, 3, 17};
                    float[] expected = new float[ids.length * d];
                    ScalarKernels.embedding(table, ids, ids.length, expected);
                    float[] actual = new float[ids.length * d];
                    kernels.embedding(table, 0, ids, ids.length, actual);
                    assertArrayEquals(expected, actual, dtype + " d=" + d);
                }
                // A slice of a vocabulary, rows [10, 14): its own ids are looked up, all others give zeros.
                Tensor slice = TestData.tensor(arena, dtype, 4, 8, floats(random, 32, 1));
                int[] ids = {9, 10, 13, 14, 0};
                float[] actual = new float[ids.length * 8];
                Arrays.fill(actual, Float.NaN);
                kernels.embedding(slice, 10, ids, ids.length, actual);
                float[] expected = new float[ids.length * 8];
                ScalarKernels.embedding(slice, new int[] {0, 3}, 2, expected);
                System.arraycopy(expected, 0, expected, 8, 16);
                Arrays.fill(expected, 0, 8, 0f);
                assertArrayEquals(expected, actual, dtype + " vocabulary slice");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void normsMatchScalar(int threads) {
        SplittableRandom random = new SplittableRandom(13);
        try (CpuKernels kernels = new CpuKernels(threads)) {
            for (int d : new int[] {1, 7, 64, 100, 1000}) {
                for (int tokens : new int[] {1, 3, 17, 130}) {
                    float[] x = floats(random, tokens * d, 4);
                    for (int i = 0; i < x.length; i += 3) {
                        x[i] += 10; // an offset that a one-pass variance would lose precision on
                    }
                    float[] weight = floats(random, d, 2);
                    float[] bias = floats(random, d, 1);
                    float[] expected = new float[tokens * d];
                    float[] actual = new float[tokens * d];
                    ScalarKernels.rmsNorm(x, expected, tokens, weight, 1e-5f);
                    kernels.rmsNorm(x, actual, tokens, weight, 1e-5f);
                    assertClose("rmsNorm d=" + d + " tokens=" + tokens, expected, actual, expected.length, null,
                            1e-5, 1e-6);
                    ScalarKernels.layerNorm(x, expected, tokens, weight, bias, 1e-5f);
                    kernels.layerNorm(x, actual, tokens, weight, bias, 1e-5f);
                    assertClose("layerNorm d=" + d + " tokens=" + tokens, expected, actual, expected.length, null,
                            1e-5, 1e-5);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void activationsMatchScalar(int threads) {
        SplittableRandom random = new SplittableRandom(17);
        try (CpuKernels kernels = new CpuKernels(threads)) {
            for (int n : new int[] {1, 15, 16, 17, 1000, 100_003}) {
                float[] gate = floats(random, n, 12);
                float[] up = floats(random, n, 3);
                gate[0] = -100;
                if (n > 2) {
                    gate[1] = 100;
                    gate[2] = 0;
                }
                float[] expected = gate.clone();
                ScalarKernels.swiglu(expected, up, n);
                float[] actual = gate.clone();
                kernels.swiglu(actual, up, n);
                assertClose("swiglu n=" + n, expected, actual, n, null, 1e-5, 1e-30);

                expected = gate.clone();
                ScalarKernels.geluNew(expected, n);
                actual = gate.clone();
                kernels.geluNew(actual, n);
                assertClose("geluNew n=" + n, expected, actual, n, null, 1e-5, 1e-30);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void residualAndBiasAddsAreExact(int threads) {
        SplittableRandom random = new SplittableRandom(19);
        try (CpuKernels kernels = new CpuKernels(threads)) {
            for (int n : new int[] {1, 17, 100_003}) {
                float[] acc = floats(random, n + 5, 5);
                float[] x = floats(random, n + 3, 5);
                float[] expected = acc.clone();
                ScalarKernels.add(expected, x, n);
                float[] actual = acc.clone();
                kernels.add(actual, x, n);
                assertArrayEquals(expected, actual, "add n=" + n);
            }
            for (int d : new int[] {1, 19, 768}) {
                for (int tokens : new int[] {1, 5, 200}) {
                    float[] x = floats(random, tokens * d, 5);
                    float[] bias = floats(random, d, 1);
                    float[] expected = x.clone();
                    ScalarKernels.addBias(expected, tokens, bias);
                    float[] actual = x.clone();
                    kernels.addBias(actual, tokens, bias);
                    assertArrayEquals(expected, actual, "addBias d=" + d + " tokens=" + tokens);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void attentionMatchesScalarOverPagedSequences(int threads) {
        SplittableRandom random = new SplittableRandom(23);
        try (CpuKernels kernels = new CpuKernels(threads)) {
            for (int headDim : new int[] {16, 24, 64, 128}) {
                for (int group : new int[] {1, 2, 4}) {
                    checkAttention(kernels, random, headDim, 2, group);
                }
            }
            checkAttention(kernels, random, 64, 1, 8);
        }
    }

    /**
     * Three sequences with scattered block tables in one batch: a prefill chunk crossing two block boundaries,
     * a decode step on the first row of a new block, and a sequence's very first token.
     */
    private static void checkAttention(CpuKernels kernels, SplittableRandom random, int headDim, int kvHeads,
                                       int group) {
        int blockSize = 16;
        int layer = 1;
        CpuKvCache kv = new CpuKvCache(2, 12, blockSize, kvHeads, headDim);
        for (int l = 0; l < 2; l++) {
            float[] keys = kv.keys(l);
            float[] values = kv.values(l);
            for (int i = 0; i < keys.length; i++) {
                keys[i] = (float) random.nextDouble(-1, 1);
                values[i] = (float) random.nextDouble(-1, 1);
            }
        }
        int[] tableA = {7, 2, 9};
        int[] tableB = {4, 11};
        int[] tableC = {0};
        List<int[]> tables = new ArrayList<>();
        List<Integer> positions = new ArrayList<>();
        for (int p = 13; p < 40; p++) {
            tables.add(tableA);
            positions.add(p);
        }
        tables.add(tableB);
        positions.add(16);
        tables.add(tableC);
        positions.add(0);
        int tokens = positions.size();
        int heads = kvHeads * group;
        int[] pos = positions.stream().mapToInt(Integer::intValue).toArray();
        int[][] blockTables = tables.toArray(int[][]::new);
        float[] q = floats(random, tokens * heads * headDim, 2);
        float[] expected = new float[q.length];
        ScalarKernels.attention(q, expected, tokens, pos, blockTables, kv, layer, heads);
        float[] actual = new float[q.length];
        Arrays.fill(actual, Float.NaN);
        kernels.attention(q, actual, tokens, pos, blockTables, kv, layer, heads);
        // Outputs are convex combinations of values in [-1, 1].
        assertClose("attention headDim=" + headDim + " kvHeads=" + kvHeads + " group=" + group
                + " threads=" + kernels.threads(), expected, actual, q.length, null, 0, 1e-5);
    }

    @Test
    void attentionFailureInsideTheParallelLoopSurfacesAndKernelsStayUsable() {
        SplittableRandom random = new SplittableRandom(29);
        try (CpuKernels kernels = new CpuKernels(2)) {
            CpuKvCache kv = new CpuKvCache(1, 4, 16, 2, 64);
            int tokens = 40;
            int heads = 8;
            int[] positions = new int[tokens];
            int[][] tables = new int[tokens][];
            for (int t = 0; t < tokens; t++) {
                positions[t] = 40 + t;
                // The last token's table points past the pool: only its chunk fails.
                tables[t] = t == tokens - 1 ? new int[] {0, 1, 2, 3, 4, 5} : new int[] {0, 1, 2, 3, 0, 1};
            }
            float[] q = floats(random, tokens * heads * 64, 1);
            float[] out = new float[q.length];
            assertThrows(IndexOutOfBoundsException.class,
                    () -> kernels.attention(q, out, tokens, positions, tables, kv, 0, heads));

            tables[tokens - 1] = tables[0];
            float[] expected = new float[q.length];
            ScalarKernels.attention(q, expected, tokens, positions, tables, kv, 0, heads);
            kernels.attention(q, out, tokens, positions, tables, kv, 0, heads);
            assertClose("attention after a failure", expected, out, q.length, null, 0, 1e-5);
        }
    }

    @Test
    void argmaxReturnsTheFirstLargestAndNeverANaN() {
        float[] x = {0, 3, -1, 3, 2, Float.NaN, 1};
        assertEquals(1, CpuKernels.argmax(x, 0, x.length));
        assertEquals(0, CpuKernels.argmax(x, 1, 5));
        assertEquals(1, CpuKernels.argmax(x, 2, 4));
        assertEquals(0, CpuKernels.argmax(x, 6, 1));
        assertEquals(1, CpuKernels.argmax(x, 5, 2), "a NaN first is passed over");
        float[] nothing = {Float.NaN, Float.NEGATIVE_INFINITY, Float.NaN};
        assertEquals(0, CpuKernels.argmax(nothing, 0, nothing.length), "nothing above -inf");
        assertEquals(0, CpuKernels.argmax(nothing, 0, 0), "no columns");
    }

    @Test
    void argmaxRowsGivesEachRowsIndexAndValue() {
        try (CpuBackend backend = CpuBackend.owning(1);
             Backend.KvCache kv = backend.kvCache(1, 1, 1, 1, 1);
             Backend.Forward step = backend.forward(new StepIndex(new int[0], new int[0], new int[0][], new int[0]),
                     kv)) {
            float[] rows = {1, 5, 5, Float.NaN, -2, Float.NaN, Float.NEGATIVE_INFINITY, Float.NaN, 7};
            Backend.Buffer x = step.buffer(rows.length);
            backend.fromHost(MemorySegment.ofArray(rows), x, rows.length);
            int[] ids = new int[3];
            float[] maxima = new float[3];
            backend.argmaxRows(x, 3, 3, ids, maxima);
            assertArrayEquals(new int[] {1, 1, 2}, ids);
            assertArrayEquals(new float[] {5, -2, 7}, maxima);
            Arrays.fill(rows, Float.NaN);
            backend.fromHost(MemorySegment.ofArray(rows), x, rows.length);
            backend.argmaxRows(x, 3, 3, ids, maxima);
            assertArrayEquals(new int[] {0, 0, 0}, ids);
            assertArrayEquals(new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY},
                    maxima, "rows of NaN");
        }
    }

    /** Weights are packed when loaded, not at a first request; lookup tables are never packed. */
    @Test
    void aLookupTableIsNotAMatmulWeight() {
        try (Arena arena = Arena.ofConfined(); CpuBackend backend = CpuBackend.owning(1);
             Backend.KvCache kv = backend.kvCache(1, 1, 1, 1, 1);
             Backend.Forward step = backend.forward(new StepIndex(new int[0], new int[0], new int[0][], new int[0]),
                     kv)) {
            SplittableRandom random = new SplittableRandom(3);
            Tensor w = TestData.tensor(arena, DType.F32, 40, 8, floats(random, 40 * 8, 1));
            Backend.Buffer x = step.buffer(8);
            Backend.Buffer out = step.buffer(40);
            backend.matmul(x, 1, backend.matrix(w), out);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> backend.matmul(x, 1, backend.table(w), out));
            assertTrue(e.getMessage().contains(w.name()), e.getMessage());
        }
    }

    @Test
    void instancesUsedFromSeveralThreadsAtOnceStayIndependent() throws Exception {
        matmulsFromThreeThreads(false);
    }

    /** Two schedulers over one model call one instance from two threads: they take turns, never deadlock. */
    @Test
    void oneInstanceSharedByThreadsGivesEachItsResult() throws Exception {
        matmulsFromThreeThreads(true);
    }

    /** 200 matmuls on each of 3 threads, on one shared instance or on one instance per thread. */
    private static void matmulsFromThreeThreads(boolean shared) throws Exception {
        int n = 257;
        int k = 300;
        int tokens = 5;
        SplittableRandom random = new SplittableRandom(31);
        ExecutorService callers = Executors.newFixedThreadPool(3);
        try (Arena arena = Arena.ofShared(); CpuKernels common = new CpuKernels(2)) {
            Tensor w = TestData.tensor(arena, DType.BF16, n, k, floats(random, n * k, 1));
            PackedMatrix packed = PackedMatrix.of(w);
            float[] x = floats(random, tokens * k, 1);
            float[] expected = new float[tokens * n];
            ScalarKernels.matmul(x, tokens, w, expected);
            List<Future<?>> done = new ArrayList<>();
            for (int c = 0; c < 3; c++) {
                done.add(callers.submit(() -> {
                    CpuKernels kernels = shared ? common : new CpuKernels(2);
                    try {
                        for (int rep = 0; rep < 200; rep++) {
                            float[] out = new float[tokens * n];
                            kernels.matmul(x, tokens, packed, out);
                            assertClose("matmul from threads", expected, out, out.length, null, 1e-4, 1e-4);
                        }
                    } finally {
                        if (!shared) {
                            kernels.close();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            callers.shutdownNow();
        }
    }

    @Test
    void closeEndsTheHelperThreads() throws InterruptedException {
        CpuKernels kernels = new CpuKernels(3);
        List<Thread> helpers = kernels.helperThreads();
        assertEquals(2, helpers.size());
        assertTrue(helpers.stream().allMatch(Thread::isAlive));
        kernels.close();
        for (Thread t : helpers) {
            t.join(5_000);
            assertTrue(!t.isAlive(), t.getName() + " still running");
        }
        kernels.close();
        assertThrows(IllegalStateException.class,
                () -> kernels.attention(new float[64 * 64], new float[64 * 64], 64, new int[64], new int[64][],
                        new CpuKvCache(1, 4, 16, 1, 64), 0, 1));
    }
}
