package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.kernels.Backend;
import io.flover.kernels.Device;
import io.flover.kernels.cuda.CudaBackend;
import io.flover.kernels.cpu.MatmulBenchmark;
import io.flover.kernels.cpu.MemoryBandwidth;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.worker.CausalLm;
import io.flover.worker.LoadedModel;
import io.flover.worker.StepBatch;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.function.DoubleSupplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "bench-engine", mixinStandardHelpOptions = true,
        description = {"Measure the engine on one model: memory bandwidth, matmul GFLOP/s (CPU), prompt processing "
                + "and decode tokens/s at several batch sizes, against the memory-bandwidth limit of decoding.",
                "On a GPU the bandwidth is that of a device-to-device copy. Without --model it writes (once) "
                        + "random-weight Llama checkpoints of the 110m shape."})
final class BenchEngineCommand implements Callable<Integer> {
    @Option(names = "--model", description = "model directory or GGUF file (default: random llama 110m per --dtypes: f32, f16, bf16, q8_0, q4_0)")
    Path model;

    @Option(names = "--dtypes", split = ",", defaultValue = "f32,bf16",
            description = "weight dtypes of the default models (default: ${DEFAULT-VALUE})")
    List<String> dtypes;

    @Option(names = "--batches", split = ",", defaultValue = "1,4,16,32,64",
            description = "decode batch sizes (default: ${DEFAULT-VALUE})")
    int[] batches;

    @Option(names = "--decode-steps", defaultValue = "128",
            description = "tokens each sequence decodes, timed (default: ${DEFAULT-VALUE}; llama-bench's -n)")
    int decodeSteps;

    @Option(names = "--decode-prompt-len", defaultValue = "0",
            description = "prompt each sequence has before it decodes (default: ${DEFAULT-VALUE}: from an empty "
                    + "context, as llama-bench's tg; llama-batched-bench's -npp)")
    int decodePromptLength;

    @Option(names = "--prompt-len", defaultValue = "512",
            description = "prompt length for prompt processing, 0 for none (default: ${DEFAULT-VALUE}; llama-bench's -p)")
    int promptLength;

    @Option(names = "--repetitions", defaultValue = "5",
            description = "timed runs of each figure, which is their mean, shown with their standard deviation "
                    + "(default: ${DEFAULT-VALUE}; llama-bench's -r)")
    int repetitions;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Mixin
    DeviceFlags device;

    @Option(names = "--json", description = "also write the results as JSON to this file")
    Path jsonOut;

    private static final int BLOCK_SIZE = 16;
    private final PrintStream out = System.out;

    @Override
    public Integer call() throws Exception {
        Flags.require(repetitions >= 1, "--repetitions must be at least 1, got " + repetitions);
        Device on = device.device();
        Map<String, Object> results = new LinkedHashMap<>();
        double bandwidth;
        try (Backend backend = on.open(threads)) {
            if (backend instanceof CudaBackend gpu) {
                bandwidth = gpu.copyBandwidth(1L << 30, 5);
                out.printf("%s, device copy bandwidth %.0f GB/s (read + written)%n%n", on, bandwidth / 1e9);
                results.put("copy_gb_per_s", bandwidth / 1e9);
            } else {
                bandwidth = MemoryBandwidth.measure(threads, 1L << 30, 1.0);
                out.printf("threads %d, memory read bandwidth %.1f GB/s%n%n", threads, bandwidth / 1e9);
                results.put("threads", threads);
                results.put("memory_read_gb_per_s", bandwidth / 1e9);
            }
        }
        results.put("device", on.toString());
        List<Path> models = new ArrayList<>();
        if (model != null) {
            models.add(model);
        } else {
            for (String d : dtypes) {
                models.add(ModelCache.get(Architecture.LLAMA, RandomCheckpoint.Preset.M110, DType.parse(d)));
            }
        }
        List<Object> perModel = new ArrayList<>();
        for (Path dir : models) {
            // A backend per model: on a GPU, closing it is what frees the model's weights.
            try (Backend backend = on.open(threads)) {
                perModel.add(benchModel(backend, dir, bandwidth));
            }
        }
        results.put("models", perModel);
        if (jsonOut != null) {
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(jsonOut.toFile(), results);
        }
        return 0;
    }

    private Map<String, Object> benchModel(Backend backend, Path dir, double bandwidth) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        try (LoadedModel m = LoadedModel.open(dir, backend)) {
            CausalLm lm = m.lm();
            DType dtype = m.weightsDtype();
            int d = m.config().hiddenSize();
            int f = m.config().intermediateSize();
            double limit = bandwidth / m.weightBytesPerToken();
            out.printf("== %s (%s, %.0fM parameters, %.0f MB of weights) ==%n", dir.getFileName(), dtype,
                    m.parameterCount() / 1e6, m.weightBytes() / 1e6);
            r.put("model", dir.toString());
            r.put("dtype", dtype.name());
            r.put("weight_bytes", m.weightBytes());

            if (backend instanceof CpuBackend cpu) {
                // Flover writes no K-quant weights of its own to time: a Q4_K or Q6_K model shows F32's lines.
                DType packed = dtype == DType.Q4_K || dtype == DType.Q6_K ? DType.F32 : dtype;
                r.put("matmul", matmul(cpu.kernels(), packed, new int[][] {{f, d}, {d, f}, {m.config().vocabSize(), d}}));
            }

            warmUp(lm);
            if (promptLength > 0) {
                Runs prefill = prefillTokensPerSecond(lm, repetitions);
                out.printf("prompt processing (%d tokens): %s tokens/s%n", promptLength, prefill);
                r.put("prompt_tokens_per_s", prefill.mean());
                r.put("prompt_tokens_per_s_sd", prefill.sd());
            }

            out.printf("decode of %d tokens after a prompt of %d (limit for one sequence at %.1f GB/s: %.1f tokens/s):%n",
                    decodeSteps, decodePromptLength, bandwidth / 1e9, limit);
            List<Object> decode = new ArrayList<>();
            for (int batch : batches) {
                Runs tps = Runs.of(repetitions, () -> decodeTokensPerSecond(lm, batch, decodeSteps));
                String vsLimit = batch == 1 ? String.format("  (%.0f%% of the bandwidth limit)", 100 * tps.mean() / limit) : "";
                out.printf("  batch %3d: %s tokens/s%s%n", batch, tps, vsLimit);
                decode.add(Map.of("batch", batch, "tokens_per_s", tps.mean(), "tokens_per_s_sd", tps.sd()));
            }
            r.put("decode_limit_tokens_per_s", limit);
            r.put("decode", decode);
            out.println();
        }
        return r;
    }

    /** GFLOP/s of the CPU's matmul for weights of each shape {@code [n, k]}, at several token counts. */
    private List<Object> matmul(CpuKernels kernels, DType dtype, int[][] shapes) {
        out.println("matmul (weights [n, k], GFLOP/s and weight GB/s):");
        List<Object> mm = new ArrayList<>();
        for (int[] s : shapes) {
            StringBuilder line = new StringBuilder(String.format("  %6d x %-5d", s[0], s[1]));
            for (int tokens : new int[] {1, 4, 16, 64}) {
                MatmulBenchmark.Result res = MatmulBenchmark.run(kernels, dtype, s[0], s[1], tokens, 0.5);
                line.append(String.format("  T=%-2d %6.1f GFLOP/s %5.1f GB/s", tokens, res.gflops(), res.weightGBps()));
                mm.add(Map.of("n", s[0], "k", s[1], "tokens", tokens, "gflops", res.gflops(),
                        "weight_gb_per_s", res.weightGBps()));
            }
            out.println(line);
        }
        return mm;
    }

    /**
     * Runs every path to be timed until the JIT has compiled it: measured cold, the first model looks several
     * times slower than the next one.
     */
    private void warmUp(CausalLm lm) {
        long end = System.nanoTime() + 3_000_000_000L;
        while (System.nanoTime() < end) {
            if (promptLength > 0) {
                prefillTokensPerSecond(lm, 1);
            }
            for (int batch : batches) {
                decodeTokensPerSecond(lm, batch, 2);
            }
        }
    }

    /**
     * Tokens/s of forward passes over a prompt of {@link #promptLength}, each timed alone: llama-bench's pp. They
     * share one KV cache, which each overwrites, so that no run pays for touching fresh memory.
     */
    private Runs prefillTokensPerSecond(CausalLm lm, int runs) {
        int[] prompt = randomTokens(promptLength, lm.config().vocabSize(), 1);
        int blocks = (promptLength + BLOCK_SIZE - 1) / BLOCK_SIZE;
        int[] table = identity(blocks);
        try (Backend.KvCache kv = lm.newKvCache(blocks, BLOCK_SIZE)) {
            lm.forward(StepBatch.single(prompt, 0, table), kv, false);
            return Runs.of(runs, () -> {
                long start = System.nanoTime();
                lm.forward(StepBatch.single(prompt, 0, table), kv, false);
                return promptLength / ((System.nanoTime() - start) / 1e9);
            });
        }
    }

    /**
     * {@code batch} sequences with prompts of {@link #decodePromptLength} tokens (not timed), then {@code steps}
     * fused decode steps of all of them, timed from the first: llama-bench's tg and llama-batched-bench's S_TG.
     */
    private double decodeTokensPerSecond(CausalLm lm, int batch, int steps) {
        int vocab = lm.config().vocabSize();
        int promptLen = decodePromptLength;
        int perSeqBlocks = (promptLen + steps + BLOCK_SIZE) / BLOCK_SIZE;
        try (Backend.KvCache kv = lm.newKvCache(perSeqBlocks * batch, BLOCK_SIZE)) {
            int[][] tables = new int[batch][perSeqBlocks];
            for (int s = 0; s < batch; s++) {
                for (int b = 0; b < perSeqBlocks; b++) {
                    tables[s][b] = s * perSeqBlocks + b;
                }
            }
            for (int s = 0; s < batch && promptLen > 0; s++) {
                lm.forward(StepBatch.single(randomTokens(promptLen, vocab, s), 0, tables[s]), kv, false);
            }
            int[] starts = new int[batch];
            Arrays.setAll(starts, i -> i);
            int[] ones = new int[batch];
            Arrays.fill(ones, 1);
            boolean[] want = new boolean[batch];
            Arrays.fill(want, true);
            int[] tokens = randomTokens(batch, vocab, 99);
            long start = System.nanoTime();
            for (int step = 0; step < steps; step++) {
                int[] positions = new int[batch];
                Arrays.fill(positions, promptLen + step);
                // As greedy serving runs: the argmax where the logits are, none copied to the host.
                lm.forward(new StepBatch(tokens, starts, ones, positions, tables, want), kv, false);
            }
            return (double) batch * steps / ((System.nanoTime() - start) / 1e9);
        }
    }

    /** Repeated measurements of one figure, as llama-bench reports its runs. */
    private record Runs(double mean, double sd) {
        static Runs of(int n, DoubleSupplier run) {
            double[] v = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = run.getAsDouble();
            }
            double mean = Arrays.stream(v).average().orElseThrow();
            double squares = Arrays.stream(v).map(x -> (x - mean) * (x - mean)).sum();
            return new Runs(mean, n > 1 ? Math.sqrt(squares / (n - 1)) : 0);
        }

        @Override
        public String toString() {
            return String.format("%8.1f ± %5.1f", mean, sd);
        }
    }

    private static int[] randomTokens(int n, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] t = new int[n];
        Arrays.setAll(t, i -> r.nextInt(vocab));
        return t;
    }

    private static int[] identity(int n) {
        int[] t = new int[n];
        Arrays.setAll(t, i -> i);
        return t;
    }
}
