package io.flover.cli;

import io.flover.coordinator.EmbeddedEngine;
import io.flover.coordinator.FinishReason;
import io.flover.coordinator.GenerationListener;
import io.flover.coordinator.GenerationRequest;
import io.flover.coordinator.Policy;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.worker.LoadedModel;
import io.flover.worker.SamplingParams;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "bench-policies", mixinStandardHelpOptions = true,
        description = {"Run one seeded workload (Poisson arrivals, varied output lengths) through the in-process "
                + "scheduler under each policy, and compare total time and mean latency.",
                "Without --model it uses a random-weight Llama of the 110m shape (written once)."})
final class BenchPoliciesCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", description = "model directory (default: random llama 110m, f32)")
    Path model;

    @Option(names = "--requests", defaultValue = "32", description = "requests per run (default: ${DEFAULT-VALUE})")
    int requests;

    @Option(names = "--rates", split = ",", defaultValue = "1,4,inf",
            description = "Poisson arrival rates in requests/s, 'inf' sends all at once (default: ${DEFAULT-VALUE})")
    List<String> rates;

    @Option(names = "--prompt-len", defaultValue = "8", description = "prompt tokens (default: ${DEFAULT-VALUE})")
    int promptLength;

    @Option(names = "--output-len", defaultValue = "16:256",
            description = "output tokens, N or uniform MIN:MAX (default: ${DEFAULT-VALUE})")
    String outputLength;

    @Option(names = "--policies", split = ",", defaultValue = "fusion,dynamic-batching,sequential",
            description = "policies to compare (default: ${DEFAULT-VALUE})")
    List<String> policies;

    @Option(names = "--max-batch", defaultValue = "32", description = "live sequences at most (default: ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--max-queue-delay", defaultValue = "10",
            description = "dynamic batching: ms to wait for a full batch (default: ${DEFAULT-VALUE})")
    long maxQueueDelayMs;

    @Option(names = "--seed", defaultValue = "1", description = "workload seed (default: ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    record Arrival(double atSeconds, int[] prompt, int maxTokens) {
    }

    record Result(double totalSeconds, double meanLatencySeconds, long tokens) {
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Path dir = model != null ? model : ModelCache.get(Architecture.LLAMA, RandomCheckpoint.Preset.M110, DType.F32);
        try (CpuKernels kernels = new CpuKernels(threads); LoadedModel m = LoadedModel.open(dir, kernels)) {
            int[] lengths = parseRange(outputLength);
            // Compile the hot paths before anything is timed, or the first run pays for the JIT.
            List<Arrival> warmUp = workload("inf", new int[] {8, 16}, m.config().vocabSize());
            run(m, new Policy.Fusion(), warmUp.subList(0, Math.min(8, warmUp.size())));
            run(m, Policy.sequential(), warmUp.subList(0, Math.min(2, warmUp.size())));
            out.printf("%s, %d requests, prompt %d tokens, output %s tokens, max batch %d%n%n", dir.getFileName(),
                    requests, promptLength, outputLength, maxBatch);
            out.printf("| rate (req/s) | policy | total (s) | mean latency (s) | tokens/s | total vs fusion | latency vs fusion |%n");
            out.printf("|---|---|---|---|---|---|---|%n");
            out.flush();
            for (String rate : rates) {
                List<Arrival> workload = workload(rate, lengths, m.config().vocabSize());
                Map<String, Result> byPolicy = new LinkedHashMap<>();
                for (String p : policies) {
                    byPolicy.put(p, run(m, Policy.parse(p, maxBatch, Duration.ofMillis(maxQueueDelayMs)), workload));
                    Result r = byPolicy.get(p);
                    Result base = byPolicy.values().iterator().next();
                    out.printf("| %s | %s | %.1f | %.2f | %.0f | %.2fx | %.2fx |%n", rate, p, r.totalSeconds(),
                            r.meanLatencySeconds(), r.tokens() / r.totalSeconds(), r.totalSeconds() / base.totalSeconds(),
                            r.meanLatencySeconds() / base.meanLatencySeconds());
                    out.flush();
                }
            }
        }
        return 0;
    }

    private List<Arrival> workload(String rate, int[] lengths, int vocab) {
        SplittableRandom rnd = new SplittableRandom(seed);
        double perSecond = rate.equals("inf") ? Double.POSITIVE_INFINITY : Double.parseDouble(rate);
        if (!(perSecond > 0)) {
            throw new IllegalArgumentException("--rates: '" + rate + "' is not a positive rate or 'inf'");
        }
        List<Arrival> arrivals = new ArrayList<>();
        double t = 0;
        for (int i = 0; i < requests; i++) {
            int[] prompt = new int[promptLength];
            for (int j = 0; j < promptLength; j++) {
                prompt[j] = rnd.nextInt(vocab);
            }
            int max = lengths[0] + rnd.nextInt(lengths[1] - lengths[0] + 1);
            arrivals.add(new Arrival(t, prompt, max));
            if (Double.isFinite(perSecond)) {
                t += -Math.log(1 - rnd.nextDouble()) / perSecond; // exponential gaps: a Poisson process
            }
        }
        return arrivals;
    }

    private Result run(LoadedModel m, Policy policy, List<Arrival> workload) throws Exception {
        int positions = workload.stream().mapToInt(a -> a.prompt().length + a.maxTokens()).sum();
        int blocks = positions / EmbeddedEngine.BLOCK_SIZE + workload.size() + 1; // room for everyone: no preemption
        SchedulerConfig config = new SchedulerConfig(policy, maxBatch, Math.max(256, maxBatch), workload.size());
        List<CompletableFuture<Double>> latencies = new ArrayList<>();
        long start = System.nanoTime();
        try (Scheduler scheduler = EmbeddedEngine.start(m.lm(), null, blocks, config)) {
            for (Arrival a : workload) {
                long due = start + (long) (a.atSeconds() * 1e9);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    TimeUnit.NANOSECONDS.sleep(wait);
                }
                CompletableFuture<Double> latency = new CompletableFuture<>();
                scheduler.submit(new GenerationRequest(a.prompt(), a.maxTokens(), SamplingParams.GREEDY, List.of(),
                        Set.of(), true), new GenerationListener() {
                    @Override
                    public void onTokens(int[] ids, String text) {
                    }

                    @Override
                    public void onFinished(Outcome o) {
                        if (o.reason() == FinishReason.ERROR) {
                            latency.completeExceptionally(new IllegalStateException(o.error()));
                        } else {
                            latency.complete(o.totalSeconds());
                        }
                    }
                });
                latencies.add(latency);
            }
            double sum = 0;
            for (CompletableFuture<Double> l : latencies) {
                sum += l.get();
            }
            long tokens = workload.stream().mapToLong(Arrival::maxTokens).sum();
            return new Result((System.nanoTime() - start) / 1e9, sum / workload.size(), tokens);
        }
    }

    private static int[] parseRange(String s) {
        String[] parts = s.split(":");
        try {
            int lo = Integer.parseInt(parts[0].trim());
            int hi = parts.length > 1 ? Integer.parseInt(parts[1].trim()) : lo;
            if (parts.length > 2 || lo < 1 || hi < lo) {
                throw new NumberFormatException();
            }
            return new int[] {lo, hi};
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--output-len: '" + s + "' is not N or MIN:MAX with 1 <= MIN <= MAX");
        }
    }
}
