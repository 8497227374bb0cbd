package io.flover.kernels.cpu;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link CpuKernels#matmul} on the 110m Llama's shapes ({@code n x k}: 2048 x 768 is gate/up, 768 x 2048 down),
 * on all threads. GFLOP/s = {@code 2 * n * k * tokens / time}.
 *
 * <pre>
 * ./mvnw -pl kernels -am test-compile -Pjmh -Dflover.ptx.skip=true -Djmh='MatmulJmh -p dtype=Q8_0,Q4_0 -p tokens=1'
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class MatmulJmh {
    @Param({"F32", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    public DType dtype;
    @Param({"2048x768", "768x2048"})
    public String shape;
    @Param({"1", "16", "64", "512"})
    public int tokens;
    @Param("2")
    public int threads;

    private CpuKernels kernels;
    private Arena arena;
    private PackedMatrix w;
    private float[] x;
    private float[] out;

    @Setup(Level.Trial)
    public void setUp() {
        int n = Integer.parseInt(shape.split("x")[0]);
        int k = Integer.parseInt(shape.split("x")[1]);
        SplittableRandom random = new SplittableRandom(1);
        arena = Arena.ofConfined();
        float[] values = TestData.floats(random, n * k, 1);
        Tensor t = dtype.quantized() ? TestData.quantized(arena, dtype, n, k, values) : TestData.tensor(arena, dtype, n, k, values);
        w = PackedMatrix.of(t);
        x = TestData.floats(random, tokens * k, 1);
        out = new float[tokens * n];
        kernels = new CpuKernels(threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        kernels.close();
        arena.close();
    }

    @Benchmark
    public float[] matmul() {
        kernels.matmul(x, tokens, w, out);
        return out;
    }
}
