package io.flover.kernels.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The kernels give the same bits interpreted as compiled by C2: a request served while the JIT warms up equals
 * itself served warm. {@link #main} runs each non-matmul kernel on fixed inputs, as many times as asked, and prints
 * a hash of the last outputs' bits; the test runs it once in a JVM that only interprets, and 20,000 times in one
 * that compiles as a server does but waits for each compilation (so that the last calls run C2's code), and
 * compares.
 */
class JitIndependenceTest {
    @Test
    void kernelsGiveTheSameBitsInterpretedAsCompiled() throws Exception {
        List<String> interpreted = run(1, "-Xint");
        List<String> compiled = run(20_000, "-Xbatch");
        assertEquals(interpreted, compiled);
    }

    private static List<String> run(int calls, String... flags) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(flags));
        command.addAll(List.of("--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path"),
                JitIndependenceTest.class.getName(), Integer.toString(calls)));
        Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", flags) + " run failed: " + out);
        }
        return out.lines().toList();
    }

    public static void main(String[] args) {
        int calls = Integer.parseInt(args[0]);
        SplittableRandom random = new SplittableRandom(5);
        int d = 72;
        int tokens = 3;
        float[] x = TestData.floats(random, tokens * d, 8);
        float[] weight = TestData.floats(random, d, 1);
        float[] bias = TestData.floats(random, d, 1);
        float[] gateIn = TestData.floats(random, 1000, 12);
        float[] up = TestData.floats(random, 1000, 3);
        float[] geluIn = TestData.floats(random, 1000, 12);
        int headDim = 24;
        int heads = 2;
        CpuKvCache kv = new CpuKvCache(1, 4, 16, heads, headDim);
        float[] keys = kv.keys(0);
        float[] values = kv.values(0);
        for (int i = 0; i < keys.length; i++) {
            keys[i] = (float) random.nextDouble(-4, 4);
            values[i] = (float) random.nextDouble(-1, 1);
        }
        int[] positions = {0, 20, 37};
        int[][] tables = {{2, 0, 3}, {2, 0, 3}, {2, 0, 3}};
        float[] q = TestData.floats(random, tokens * heads * headDim, 4);

        float[] rms = new float[x.length];
        float[] layer = new float[x.length];
        float[] gate = new float[1000];
        float[] gelu = new float[1000];
        float[] attended = new float[q.length];
        try (CpuKernels kernels = new CpuKernels(1)) {
            for (int call = 0; call < calls; call++) {
                kernels.rmsNorm(x, rms, tokens, weight, 1e-5f);
                kernels.layerNorm(x, layer, tokens, weight, bias, 1e-5f);
                System.arraycopy(gateIn, 0, gate, 0, gate.length);
                kernels.swiglu(gate, up, gate.length);
                System.arraycopy(geluIn, 0, gelu, 0, gelu.length);
                kernels.geluNew(gelu, gelu.length);
                kernels.attention(q, attended, tokens, positions, tables, kv, 0, heads);
            }
        }
        print("rmsNorm", rms);
        print("layerNorm", layer);
        print("swiglu", gate);
        print("geluNew", gelu);
        print("attention", attended);
    }

    private static void print(String kernel, float[] v) {
        int[] bits = new int[v.length];
        Arrays.setAll(bits, i -> Float.floatToRawIntBits(v[i]));
        System.out.println(kernel + " " + Arrays.hashCode(bits));
    }
}
