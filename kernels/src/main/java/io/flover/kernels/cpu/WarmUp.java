package io.flover.kernels.cpu;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Runs every path of the CPU kernels on small made-up data until the JIT has compiled them with profiles that hold
 * all their branches: each matmul tile (12, 4 and 1 tokens, full and partial) on every packed format, one and
 * several weights at once, attention over short and longer contexts, the norms and activations. A path first met
 * under load (a burst brings a batch width never seen before) would otherwise run interpreted for a while and make
 * the compiled code around it deoptimise, stalling every running sequence's next token.
 */
final class WarmUp {
    /** Rounds: enough invocations and loop iterations for C2 to compile each kernel with a full profile. */
    private static final int ROUNDS = 1500;
    private static final int[] MATMUL_TOKENS = {1, 2, 3, 4, 5, 8, 12, 13, 30};

    private WarmUp() {
    }

    static void run(CpuKernels k) {
        SplittableRandom random = new SplittableRandom(1);
        int d = 64;
        int n = 2 * PanelFormat.GROUP + 5;
        int maxTokens = Arrays.stream(MATMUL_TOKENS).max().orElseThrow();
        try (Arena arena = Arena.ofConfined()) {
            PackedMatrix[] weights = {
                    PackedMatrix.of(tensor(arena, DType.F32, n, d, random)),
                    PackedMatrix.of(tensor(arena, DType.BF16, n, d, random)),
                    PackedMatrix.of(tensor(arena, DType.Q8_0, n, d, random)),
                    PackedMatrix.of(tensor(arena, DType.Q4_0, n, d, random))};
            float[] x = floats(random, maxTokens * d);
            float[] out = new float[maxTokens * n];
            float[] out2 = new float[maxTokens * n];
            float[] norm = floats(random, d);
            float[] h = new float[maxTokens * d];

            int heads = 2;
            int headDim = d / heads;
            int blockSize = 16;
            int contexts = 4;
            CpuKvCache kv = new CpuKvCache(1, contexts * 8, blockSize, heads, headDim);
            Arrays.fill(kv.keys(0), 0.01f);
            Arrays.fill(kv.values(0), 0.02f);
            int[][] tables = new int[maxTokens][];
            int[] positions = new int[maxTokens];
            for (int t = 0; t < maxTokens; t++) {
                int c = t % contexts;
                tables[t] = new int[] {8 * c, 8 * c + 1, 8 * c + 2, 8 * c + 3, 8 * c + 4, 8 * c + 5, 8 * c + 6, 8 * c + 7};
                positions[t] = (t * 37) % (8 * blockSize);
            }
            float[] q = floats(random, maxTokens * d);
            float[] attn = new float[maxTokens * d];

            for (int round = 0; round < ROUNDS; round++) {
                int tokens = MATMUL_TOKENS[round % MATMUL_TOKENS.length];
                for (PackedMatrix w : weights) {
                    k.matmul(x, tokens, w, out);
                }
                k.matmul(x, tokens, Arrays.copyOf(weights, 2), new float[][] {out, out2});
                k.rmsNorm(x, h, tokens, norm, 1e-5f);
                k.layerNorm(x, h, tokens, norm, norm, 1e-5f);
                k.add(h, x, tokens * d);
                k.addBias(h, tokens, norm);
                k.swiglu(out, out2, tokens * n);
                k.geluNew(out2, tokens * n);
                k.attention(q, attn, tokens, positions, tables, kv, 0, heads);
            }
        }
    }

    private static Tensor tensor(Arena arena, DType dtype, int rows, int cols, SplittableRandom random) {
        long rowBytes = dtype.bytes(cols);
        MemorySegment data = arena.allocate(rows * rowBytes, 64);
        for (int r = 0; r < rows; r++) {
            dtype.quantize(floats(random, cols), 0, cols / dtype.blockSize(), data, r * rowBytes);
        }
        return new Tensor("warm-up", dtype, new long[] {rows, cols}, data);
    }

    private static float[] floats(SplittableRandom random, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) random.nextDouble(-1, 1);
        }
        return f;
    }
}
