package io.flover.kernels.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.model.DType;
import org.junit.jupiter.api.Test;

class MatmulBenchmarkTest {

    @Test
    void reportsConsistentPositiveRates() {
        try (CpuKernels kernels = new CpuKernels(2)) {
            MatmulBenchmark.Result r = MatmulBenchmark.run(kernels, DType.BF16, 96, 80, 3, 0.05);
            assertEquals(2, r.threads());
            assertEquals(1, r.copies());
            assertTrue(r.micros() > 0 && Double.isFinite(r.micros()), r.toString());
            assertEquals(2.0 * 96 * 80 * 3 / r.micros() / 1e3, r.gflops(), 1e-9 * r.gflops());
            assertEquals(96 * 80 * 2 / r.micros() / 1e3, r.weightGBps(), 1e-9 * r.weightGBps());
        }
    }
}
