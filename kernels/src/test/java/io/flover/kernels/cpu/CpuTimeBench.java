package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;

/**
 * The matmul tiles against this machine's FMA peak, on one thread, timed by that thread's CPU time: on a machine
 * that other processes load, wall-clock benchmarks (the JMH ones beside this) measure the load, while CPU time
 * measures the code (cache sharing aside). Prints GFLOP per CPU-second for the 110m Llama's gate/up shape.
 *
 * <pre>
 * ./mvnw -q -pl kernels -am test-compile -Dflover.ptx.skip=true
 * java --add-modules jdk.incubator.vector -cp kernels/target/classes:kernels/target/test-classes:model/target/classes \
 *     io.flover.kernels.cpu.CpuTimeBench
 * </pre>
 */
final class CpuTimeBench {
    private static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

    private CpuTimeBench() {
    }

    public static void main(String[] args) {
        System.out.printf("FMA peak, one thread: %.1f GFLOP/cpu-s%n", fmaPeak());
        int n = 2048;
        int k = 768;
        SplittableRandom random = new SplittableRandom(1);
        try (Arena arena = Arena.ofConfined(); CpuKernels kernels = new CpuKernels(1)) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K}) {
                float[] values = TestData.floats(random, n * k, 1);
                Tensor t = dtype.quantized() ? TestData.quantized(arena, dtype, n, k, values)
                        : TestData.tensor(arena, dtype, n, k, values);
                PackedMatrix w = PackedMatrix.of(t);
                StringBuilder line = new StringBuilder(String.format("matmul %s %dx%d, GFLOP/cpu-s:", dtype, n, k));
                for (int tokens : new int[] {1, 4, 16, 64, 512}) {
                    float[] x = TestData.floats(random, tokens * k, 1);
                    float[] out = new float[tokens * n];
                    double seconds = bestCpuSeconds(() -> kernels.matmul(x, tokens, w, out));
                    line.append(String.format("  T=%d %.1f", tokens, 2.0 * n * k * tokens / seconds / 1e9));
                }
                System.out.println(line);
            }
        }
    }

    /** The fastest of 5 timings, in CPU seconds per call, after 5 s of warm-up (C2 is slow on a loaded machine). */
    private static double bestCpuSeconds(Runnable call) {
        long warm = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < warm) {
            call.run();
        }
        double best = Double.MAX_VALUE;
        for (int rep = 0; rep < 5; rep++) {
            long start = MX.getCurrentThreadCpuTime();
            int calls = 0;
            do {
                call.run();
                calls++;
            } while (MX.getCurrentThreadCpuTime() - start < 200_000_000L);
            best = Math.min(best, (MX.getCurrentThreadCpuTime() - start) / 1e9 / calls);
        }
        return best;
    }

    private static double fmaPeak() {
        int steps = 1 << 20;
        float[] sink = new float[1];
        double seconds = bestCpuSeconds(() -> sink[0] += fmaChains(1e-7f + sink[0] * 0, steps));
        return steps * 12.0 * 2 * F.length() / seconds / 1e9;
    }

    /** 12 independent FMA chains, in registers: enough to cover the FMA latency on two pipes. */
    private static float fmaChains(float seed, int steps) {
        FloatVector m = FloatVector.broadcast(F, 1 - seed);
        FloatVector c = FloatVector.broadcast(F, seed);
        FloatVector a0 = c, a1 = c.add(1), a2 = c.add(2), a3 = c.add(3), a4 = c.add(4), a5 = c.add(5);
        FloatVector a6 = c.add(6), a7 = c.add(7), a8 = c.add(8), a9 = c.add(9), a10 = c.add(10), a11 = c.add(11);
        for (int i = 0; i < steps; i++) {
            a0 = a0.fma(m, c); a1 = a1.fma(m, c); a2 = a2.fma(m, c); a3 = a3.fma(m, c);
            a4 = a4.fma(m, c); a5 = a5.fma(m, c); a6 = a6.fma(m, c); a7 = a7.fma(m, c);
            a8 = a8.fma(m, c); a9 = a9.fma(m, c); a10 = a10.fma(m, c); a11 = a11.fma(m, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                .lane(0);
    }
}
