package io.flover.kernels.cpu;

import io.flover.model.DType;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Times {@link CpuKernels#matmul} on random off-heap weights; silent, for callers that print the numbers. */
public final class MatmulBenchmark {
    /** The timed period is cut into this many slices; the median slice is reported, which shrugs off noise. */
    private static final int SLICES = 7;

    private MatmulBenchmark() {
    }

    /**
     * One measurement: {@code gflops} counts {@code 2 * n * k * tokens} flops per call, {@code weightGBps} the
     * weight bytes (as stored: {@code dtype.bytes(n * k)}) per call, both per second; {@code micros} is one call.
     */
    public record Result(DType dtype, int n, int k, int tokens, int threads, int copies, double micros,
                         double gflops, double weightGBps) {
    }

    /**
     * Times {@code out[tokens, n] = x[tokens, k] * w[n, k]^T} for about {@code seconds}, after a warm-up of at
     * least a second (until C2 has compiled the vector loops they run many times slower). The same weight is
     * reused on every call, so a weight that fits in the last-level cache is timed from there.
     */
    public static Result run(CpuKernels kernels, DType dtype, int n, int kDim, int tokens, double seconds) {
        return run(kernels, dtype, n, kDim, tokens, seconds, 0);
    }

    /**
     * Like {@link #run(CpuKernels, DType, int, int, int, double)}, but cycles through enough copies of the weight
     * to cover {@code footprintBytes} (e.g. a few times the last-level cache), so that every call streams its
     * weight from memory as a real forward pass over a large model does.
     */
    public static Result run(CpuKernels kernels, DType dtype, int n, int kDim, int tokens, double seconds,
                             long footprintBytes) {
        long weightBytes = dtype.bytes((long) n * kDim);
        int copies = (int) Math.max(1, Math.ceilDiv(footprintBytes, weightBytes));
        SplittableRandom random = new SplittableRandom(42);
        try (Arena arena = Arena.ofConfined()) {
            PackedMatrix[] weights = new PackedMatrix[copies];
            MemorySegment data = arena.allocate(weightBytes, 64);
            fill(data, dtype, n, kDim, random);
            Tensor weight = new Tensor("bench.weight", dtype, new long[] {n, kDim}, data);
            for (int c = 0; c < copies; c++) {
                weights[c] = PackedMatrix.of(weight);
            }
            float[] x = new float[tokens * kDim];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextDouble(-1, 1);
            }
            float[] out = new float[tokens * n];

            long warmupEnd = System.nanoTime() + (long) (Math.max(1.0, seconds / 2) * 1e9);
            int calls = 0;
            while (System.nanoTime() < warmupEnd || calls < 10) {
                kernels.matmul(x, tokens, weights[calls++ % copies], out);
            }

            double[] slice = new double[SLICES];
            long sliceNanos = (long) (seconds * 1e9 / SLICES);
            for (int s = 0; s < SLICES; s++) {
                long start = System.nanoTime();
                long end = start + sliceNanos;
                int sliceCalls = 0;
                long now;
                do {
                    kernels.matmul(x, tokens, weights[calls++ % copies], out);
                    sliceCalls++;
                    now = System.nanoTime();
                } while (now < end);
                slice[s] = (now - start) / 1e3 / sliceCalls;
            }
            Arrays.sort(slice);
            double micros = slice[SLICES / 2];
            double gflops = 2.0 * n * kDim * tokens / micros / 1e3;
            double weightGBps = weightBytes / micros / 1e3;
            return new Result(dtype, n, kDim, tokens, kernels.threads(), copies, micros, gflops, weightGBps);
        }
    }

    /** Random weights in [-1, 1), rounded into {@code dtype} row by row as a quantizer would. */
    private static void fill(MemorySegment data, DType dtype, int rows, int cols, SplittableRandom random) {
        float[] row = new float[cols];
        long rowBytes = dtype.bytes(cols);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < cols; i++) {
                row[i] = (float) random.nextDouble(-1, 1);
            }
            dtype.quantize(row, 0, cols / dtype.blockSize(), data, r * rowBytes);
        }
    }
}
