package io.flover.kernels.cpu;

import static io.flover.kernels.cpu.CpuKernels.F;

import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * This machine's float32 FMA peak per thread: 12 independent vector FMA chains on registers, no memory. Run with
 * {@code -t 1} and {@code -t 2}; ops/us x 2 x lanes is GFLOP/s.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class FmaPeakJmh {
    private static final int STEPS = 1 << 16;
    public float seed = 1e-7f;

    /** One op = one vector FMA ({@code 2 * LANES} flops). */
    @Benchmark
    @OperationsPerInvocation(STEPS * 12)
    public float fma() {
        FloatVector m = FloatVector.broadcast(F, 1 - seed);
        FloatVector c = FloatVector.broadcast(F, seed);
        FloatVector a0 = c, a1 = c.add(1), a2 = c.add(2), a3 = c.add(3), a4 = c.add(4), a5 = c.add(5);
        FloatVector a6 = c.add(6), a7 = c.add(7), a8 = c.add(8), a9 = c.add(9), a10 = c.add(10), a11 = c.add(11);
        for (int i = 0; i < STEPS; i++) {
            a0 = a0.fma(m, c); a1 = a1.fma(m, c); a2 = a2.fma(m, c); a3 = a3.fma(m, c);
            a4 = a4.fma(m, c); a5 = a5.fma(m, c); a6 = a6.fma(m, c); a7 = a7.fma(m, c);
            a8 = a8.fma(m, c); a9 = a9.fma(m, c); a10 = a10.fma(m, c); a11 = a11.fma(m, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                .lane(0);
    }
}
