package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.flover.coordinator.Policy;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.kernels.Device;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.ModelConfig;
import io.flover.model.RandomCheckpoint;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.ModelInfo;
import io.flover.server.EmbeddedServer;
import io.flover.server.FloverServer;
import io.flover.worker.KvMemory;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.text.DecimalFormatSymbols;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "flover", mixinStandardHelpOptions = true,
        description = {"The Flover paper's experiments on one model, each scheduler on an embedded server of its own, "
                + "one after another, all given the same seeded workload: requests at a constant interval under "
                + "fusion, dynamic batching and sequential serving; Poisson arrivals at a sweep of mean gaps, fusion "
                + "against dynamic batching; and varied output lengths under fusion with and without buffer "
                + "reordering. Prints Markdown tables; writes JSON and PNGs if asked.",
                "Intervals and gaps are multiples of the single-request step time (the time per output token of one "
                        + "request alone), measured first. Without --model it uses a random-weight Llama of the 110m "
                        + "shape (written once)."})
final class BenchFloverCommand implements Callable<Integer> {
    /** The paper's output length; shorter defaults keep sequential serving within minutes on a CPU. */
    private static final int PAPER_OUTPUT_LENGTH = 512;
    /** The shortest output of the reordering experiment, whose lengths are uniform in [16, L]. */
    private static final int MIN_VARIED_OUTPUT = 16;
    private static final int STEP_PROBES = 5;
    private static final int STEP_PROBE_TOKENS = 32;
    /** Short requests each server answers before its run, so the run starts with its pages and code warm. */
    private static final int WARMUP_REQUESTS = 2;
    private static final GenerateRequest TEMPLATE = GenerateRequest.newBuilder().setIgnoreEos(true).build();

    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "model directory (default: random llama 110m, f32)")
    Path model;

    @Option(names = "--experiments", paramLabel = "NAME", split = ",", defaultValue = "constant,poisson,reorder",
            description = "which to run, of constant, poisson and reorder (default: ${DEFAULT-VALUE})")
    List<String> experiments;

    @Option(names = "--requests", paramLabel = "N", defaultValue = "32",
            description = "requests per run (default: ${DEFAULT-VALUE})")
    int requests;

    @Option(names = "--prompt-len", paramLabel = "N", defaultValue = "8",
            description = "prompt tokens of every request (default: ${DEFAULT-VALUE})")
    int promptLength;

    @Option(names = "--output-len", paramLabel = "N", defaultValue = "64", description = "output tokens of every "
            + "request in the constant and Poisson experiments; with the paper's 512, sequential serving alone takes "
            + "5 to 9 minutes on two cores with the 110m model (default: ${DEFAULT-VALUE})")
    int outputLength;

    @Option(names = "--interval", paramLabel = "STEPS", defaultValue = "2", description = "constant and reorder "
            + "experiments: time between arrivals, in single-request steps (default: ${DEFAULT-VALUE})")
    double intervalSteps;

    @Option(names = "--gaps", paramLabel = "STEPS", split = ",", defaultValue = "2,8,32", description = "Poisson "
            + "experiment: mean gaps between arrivals, in single-request steps (default: ${DEFAULT-VALUE})")
    List<Double> gapSteps;

    @Option(names = "--lengths", paramLabel = "L", split = ",", defaultValue = "32,128", description = "reorder "
            + "experiment: output lengths are uniform in [16, L], one run per L (default: ${DEFAULT-VALUE})")
    List<Integer> maxLengths;

    @Option(names = "--max-batch", paramLabel = "N", defaultValue = "32",
            description = "live sequences at most, and dynamic batching's batch size (default: ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--max-queue-delay", paramLabel = "MS", defaultValue = "10", description = "dynamic batching: "
            + "how long the oldest request waits for a batch to fill (default: ${DEFAULT-VALUE})")
    long maxQueueDelayMs;

    @Mixin
    KvMemoryFlags kv;

    @Option(names = "--threads", paramLabel = "N", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Mixin
    DeviceFlags device;

    @Option(names = "--seed", paramLabel = "SEED", defaultValue = "1",
            description = "seed of the workloads (default: ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--json", paramLabel = "FILE", description = "also write every run's results as JSON")
    Path json;

    @Option(names = "--plots", paramLabel = "PREFIX", description = "write PREFIX-constant.png, PREFIX-poisson.png "
            + "and PREFIX-reorder.png (default: beside --json, named after it)")
    Path plots;

    private enum Experiment { CONSTANT, POISSON, REORDER }

    /** A scheduler under test, by its name in the tables. */
    private record Variant(String name, SchedulerConfig config) {
    }

    /**
     * One workload on one variant: the client's traces and report, and the scheduler's counters over the run (fused
     * steps, slot moves of buffer reordering, preemptions for lack of KV blocks).
     */
    private record Run(Variant variant, List<LoadGenerator.Trace> traces, BenchReport report, long steps,
                       long slotMoves, long preemptions) {
        double total() {
            return report.durationSeconds();
        }

        double latency() {
            return report.e2e().mean() / 1000;
        }

        Map<String, Object> json() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("variant", variant.name());
            m.putAll(report.json());
            // The generator shares its process with the server here: the CPU time is not the generator's own.
            m.keySet().removeIf(k -> k.startsWith("generator_cpu"));
            m.put("steps", steps);
            m.put("slot_moves", slotMoves);
            m.put("preemptions", preemptions);
            return m;
        }
    }

    private Path dir;
    private Device on;
    private KvMemory kvMemory;
    private int vocab;
    private PrintWriter out;

    @Override
    public Integer call() throws Exception {
        Set<Experiment> chosen = check();
        out = spec.commandLine().getOut();
        dir = model != null ? model : ModelCache.get(Architecture.LLAMA, RandomCheckpoint.Preset.M110, DType.F32);
        ModelConfig config = ModelConfig.load(dir);
        int longest = Math.max(outputLength, maxLengths.stream().mapToInt(Integer::intValue).max().orElse(0));
        Flags.require(promptLength + longest <= config.maxPositions(), String.format("--prompt-len/--output-len/"
                + "--lengths: %d prompt and %d output tokens do not fit the model's context of %d", promptLength,
                longest, config.maxPositions()));
        vocab = config.vocabSize();
        Path prefix = plots != null ? plots
                : json == null ? null : json.resolveSibling(json.getFileName().toString().replaceFirst("\\.json$", ""));

        ModelInfo info = FloverServer.info(dir, config);
        out.printf("model %s (%s, %s): hidden %d, %d layers, %d heads (%d KV), MLP %d, vocabulary %d%n", info.getName(),
                info.getArchitecture(), info.getDtype(), config.hiddenSize(), config.numLayers(), config.numHeads(),
                config.numKvHeads(), config.intermediateSize(), config.vocabSize());
        out.printf("on %s, %d threads on %d cores, max batch %d, dynamic batching's queue delay %d ms, KV cache %s per "
                + "server, %d requests per run, prompts of %d tokens, greedy with ignore_eos, seed %d%n", on, threads,
                Runtime.getRuntime().availableProcessors(), maxBatch, maxQueueDelayMs, kv.describe(), requests,
                promptLength, seed);
        out.flush();
        long started = System.nanoTime();
        double step = stepMillis();
        out.printf("single-request step: %.2f ms per output token (the fastest of %d requests alone, after "
                + "warm-up)%n%n", step, STEP_PROBES);
        out.flush();

        Map<String, Object> results = new LinkedHashMap<>();
        results.put("model", modelJson(info, config));
        Map<String, Object> machine = new LinkedHashMap<>();
        machine.put("device", on.toString());
        machine.put("threads", threads);
        machine.put("cores", Runtime.getRuntime().availableProcessors());
        machine.put("java", Runtime.version().toString());
        results.put("machine", machine);
        results.put("settings", settingsJson());
        results.put("step_ms", step);
        if (chosen.contains(Experiment.CONSTANT)) {
            results.put("constant", constant(step, prefix));
        }
        if (chosen.contains(Experiment.POISSON)) {
            results.put("poisson", poisson(step, prefix));
        }
        if (chosen.contains(Experiment.REORDER)) {
            results.put("reorder", reorder(step, prefix));
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        results.put("wall_s", seconds);
        out.printf("all runs took %.0f s%n", seconds);
        out.flush();
        if (json != null) {
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(json.toFile(), results);
        }
        return 0;
    }

    /** Checks every flag before anything is loaded, so a typo costs no model load and names the flag. */
    private Set<Experiment> check() {
        Set<Experiment> chosen = EnumSet.noneOf(Experiment.class);
        for (String e : experiments) {
            try {
                chosen.add(Experiment.valueOf(e.trim().toUpperCase(Locale.ROOT)));
            } catch (IllegalArgumentException unknown) {
                throw new IllegalArgumentException("--experiments: unknown experiment '" + e
                        + "' (expected constant, poisson or reorder)");
            }
        }
        Flags.require(requests >= 1, "--requests must be at least 1, got " + requests);
        Flags.require(promptLength >= 1, "--prompt-len must be at least 1, got " + promptLength);
        Flags.require(outputLength >= 1, "--output-len must be at least 1, got " + outputLength);
        Flags.require(intervalSteps > 0 && Double.isFinite(intervalSteps),
                "--interval must be a positive number of steps, got " + intervalSteps);
        for (double g : gapSteps) {
            Flags.require(g > 0 && Double.isFinite(g), "--gaps must be positive numbers of steps, got " + g);
        }
        for (int l : maxLengths) {
            Flags.require(l >= MIN_VARIED_OUTPUT, "--lengths must be at least " + MIN_VARIED_OUTPUT
                    + " (outputs are uniform in [16, L]), got " + l);
        }
        Flags.require(maxBatch >= 1, "--max-batch must be at least 1, got " + maxBatch);
        Flags.require(maxQueueDelayMs >= 0, "--max-queue-delay must not be negative, got " + maxQueueDelayMs);
        Flags.require(threads >= 1, "--threads must be at least 1, got " + threads);
        on = device.device();
        kvMemory = kv.kvMemory(on);
        return chosen;
    }

    /**
     * Warms the JIT on a fusion server (full batches of short requests, the paths every later run takes), then
     * times single requests alone: the least of their times per output token, since other work on the machine only
     * ever adds time.
     */
    private double stepMillis() throws Exception {
        try (Served s = new Served(fusion())) {
            Workload batch = Workload.generate(maxBatch, Workload.Arrivals.poisson(Double.POSITIVE_INFINITY),
                    new Workload.Fixed(promptLength), new Workload.Fixed(8), vocab, seed);
            s.measure("warm-up", batch);
            s.measure("warm-up", batch);
            double[] probes = new double[STEP_PROBES];
            for (int i = 0; i < probes.length; i++) {
                Workload one = Workload.generate(1, Workload.Arrivals.poisson(Double.POSITIVE_INFINITY),
                        new Workload.Fixed(promptLength), new Workload.Fixed(STEP_PROBE_TOKENS), vocab, seed + i);
                probes[i] = s.measure("single-request step", one).report().tpot().mean();
            }
            return Arrays.stream(probes).min().orElseThrow();
        }
    }

    private Map<String, Object> constant(double step, Path prefix) throws Exception {
        double intervalMs = intervalSteps * step;
        Workload w = workload(Workload.Arrivals.every(intervalMs), new Workload.Fixed(outputLength));
        out.printf("### %d requests at a constant interval of %s steps (%.1f ms), %d output tokens each%n%n", requests,
                number(intervalSteps), intervalMs, outputLength);
        if (outputLength < PAPER_OUTPUT_LENGTH) {
            out.printf("Outputs of %d tokens rather than the paper's %d: at %.1f ms per step, serving %d requests of "
                    + "%d tokens one at a time would take %.1f minutes here.%n%n", outputLength, PAPER_OUTPUT_LENGTH,
                    step, requests, PAPER_OUTPUT_LENGTH, requests * PAPER_OUTPUT_LENGTH * step / 60_000);
        }
        out.println("| policy | total (s) | mean latency (s) | output tokens/s | fusion's speedup, total | "
                + "fusion's speedup, latency |");
        out.println("|---|---|---|---|---|---|");
        List<Run> runs = new ArrayList<>();
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Variant v : List.of(fusion(), variant("dynamic-batching"), variant("sequential"))) {
            Run r = run("constant", v, w);
            runs.add(r);
            Run base = runs.getFirst();
            Map<String, Object> row = r.json();
            row.put("speedup_total", r.total() / base.total());
            row.put("speedup_latency", r.latency() / base.latency());
            rows.add(row);
            out.printf("| %s | %.1f | %.2f | %.0f | %.2fx | %.2fx |%n", v.name(), r.total(), r.latency(),
                    r.report().outputTokensPerSecond(), r.total() / base.total(), r.latency() / base.latency());
            out.flush();
        }
        out.println();
        if (prefix != null) {
            List<String> names = runs.stream().map(r -> r.variant().name()).toList();
            Map<String, double[]> bars = new LinkedHashMap<>();
            bars.put("total", values(runs, Run::total));
            bars.put("mean latency", values(runs, Run::latency));
            Map<String, double[][]> lines = new LinkedHashMap<>();
            // One bin width for all, a fiftieth of the longest run: several steps, so the lines are not jagged.
            double bin = runs.stream().mapToDouble(Run::total).max().orElse(0) / 50;
            for (Run r : runs) {
                BenchPlot.Timeline t = BenchPlot.Timeline.of(r.traces(), bin);
                lines.put(r.variant().name(), new double[][] {t.seconds(), t.tokensPerSecond()});
            }
            BenchPlot.save(png(prefix, "constant"), List.of(
                    BenchPlot.categories("Constant interval", "policy", "seconds", names, bars, false),
                    BenchPlot.lines("Throughput over time", "seconds since start", "output tokens/s", lines)));
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("interval_steps", intervalSteps);
        m.put("interval_ms", intervalMs);
        m.put("output_len", outputLength);
        m.put("workload", workloadJson(w));
        m.put("runs", rows);
        return m;
    }

    private Map<String, Object> poisson(double step, Path prefix) throws Exception {
        out.printf("### %d requests with Poisson arrivals, %d output tokens each: fusion against dynamic batching%n%n",
                requests, outputLength);
        out.println("Overlap: requests in flight on average (sum of end-to-end times over the total time). Speedup: "
                + "dynamic batching's figure over fusion's.");
        out.println();
        out.println("| mean gap (steps) | mean gap (ms) | overlap, fusion | overlap, dynamic | total (s), fusion | "
                + "total (s), dynamic | speedup, total | mean latency (s), fusion | mean latency (s), dynamic | "
                + "speedup, latency |");
        out.println("|---|---|---|---|---|---|---|---|---|---|");
        List<Map<String, Object>> rows = new ArrayList<>();
        List<Run[]> pairs = new ArrayList<>();
        for (double gap : gapSteps) {
            double gapMs = gap * step;
            Workload w = workload(Workload.Arrivals.poisson(1000 / gapMs), new Workload.Fixed(outputLength));
            String label = "Poisson, gap " + number(gap) + " steps";
            Run f = run(label, fusion(), w);
            Run d = run(label, variant("dynamic-batching"), w);
            pairs.add(new Run[] {f, d});
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("gap_steps", gap);
            row.put("gap_ms", gapMs);
            row.put("overlap_fusion", f.report().meanInFlight());
            row.put("overlap_dynamic_batching", d.report().meanInFlight());
            row.put("speedup_total", d.total() / f.total());
            row.put("speedup_latency", d.latency() / f.latency());
            row.put("workload", workloadJson(w));
            row.put("runs", List.of(f.json(), d.json()));
            rows.add(row);
            out.printf("| %s | %.1f | %.2f | %.2f | %.1f | %.1f | %.2fx | %.2f | %.2f | %.2fx |%n", number(gap), gapMs,
                    f.report().meanInFlight(), d.report().meanInFlight(), f.total(), d.total(), d.total() / f.total(),
                    f.latency(), d.latency(), d.latency() / f.latency());
            out.flush();
        }
        out.println();
        if (prefix != null) {
            List<String> gaps = gapSteps.stream().map(BenchFloverCommand::number).toList();
            Map<String, double[]> speedup = new LinkedHashMap<>();
            speedup.put("total", pairs.stream().mapToDouble(p -> p[1].total() / p[0].total()).toArray());
            speedup.put("mean latency", pairs.stream().mapToDouble(p -> p[1].latency() / p[0].latency()).toArray());
            Map<String, double[]> overlap = new LinkedHashMap<>();
            overlap.put("fusion", pairs.stream().mapToDouble(p -> p[0].report().meanInFlight()).toArray());
            overlap.put("dynamic-batching", pairs.stream().mapToDouble(p -> p[1].report().meanInFlight()).toArray());
            BenchPlot.save(png(prefix, "poisson"), List.of(
                    BenchPlot.categories("Fusion's speedup over dynamic batching", "mean gap (steps)", "speedup",
                            gaps, speedup, true),
                    BenchPlot.categories("Overlap", "mean gap (steps)", "requests in flight (mean)", gaps, overlap,
                            true)));
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("output_len", outputLength);
        m.put("gaps", rows);
        return m;
    }

    private Map<String, Object> reorder(double step, Path prefix) throws Exception {
        double intervalMs = intervalSteps * step;
        out.printf("### %d requests at a constant interval of %s steps (%.1f ms), output lengths uniform in [%d, L]: "
                + "fusion with and without buffer reordering%n%n", requests, number(intervalSteps), intervalMs,
                MIN_VARIED_OUTPUT);
        out.println("| L | buffer reordering | total (s) | mean latency (s) | output tokens/s | reordering's speedup, "
                + "total | reordering's speedup, latency |");
        out.println("|---|---|---|---|---|---|---|");
        List<Map<String, Object>> rows = new ArrayList<>();
        List<Run[]> pairs = new ArrayList<>();
        for (int l : maxLengths) {
            Workload w = workload(Workload.Arrivals.every(intervalMs), new Workload.Uniform(MIN_VARIED_OUTPUT, l));
            String label = "reorder, L " + l;
            Variant on = fusion();
            Variant off = new Variant("fusion without reordering", on.config().withoutReordering());
            Run with = run(label, on, w);
            Run without = run(label, off, w);
            pairs.add(new Run[] {with, without});
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("max_len", l);
            row.put("speedup_total", without.total() / with.total());
            row.put("speedup_latency", without.latency() / with.latency());
            row.put("workload", workloadJson(w));
            row.put("runs", List.of(with.json(), without.json()));
            rows.add(row);
            for (Run r : List.of(with, without)) {
                out.printf("| %d | %s | %.1f | %.2f | %.0f | %.2fx | %.2fx |%n", l, r == with ? "on" : "off", r.total(),
                        r.latency(), r.report().outputTokensPerSecond(), r.total() / with.total(),
                        r.latency() / with.latency());
            }
            out.flush();
        }
        out.println();
        if (prefix != null) {
            List<String> ls = maxLengths.stream().map(l -> "L = " + l).toList();
            Map<String, double[]> total = new LinkedHashMap<>();
            total.put("reordering", pairs.stream().mapToDouble(p -> p[0].total()).toArray());
            total.put("no reordering", pairs.stream().mapToDouble(p -> p[1].total()).toArray());
            Map<String, double[]> latency = new LinkedHashMap<>();
            latency.put("reordering", pairs.stream().mapToDouble(p -> p[0].latency()).toArray());
            latency.put("no reordering", pairs.stream().mapToDouble(p -> p[1].latency()).toArray());
            BenchPlot.save(png(prefix, "reorder"), List.of(
                    BenchPlot.categories("Total time", "output lengths in [16, L]", "seconds", ls, total, false),
                    BenchPlot.categories("Mean latency", "output lengths in [16, L]", "seconds", ls, latency, false)));
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("interval_steps", intervalSteps);
        m.put("interval_ms", intervalMs);
        m.put("min_len", MIN_VARIED_OUTPUT);
        m.put("lengths", rows);
        return m;
    }

    private Workload workload(Workload.Arrivals arrivals, Workload.Lengths outputs) {
        return Workload.generate(requests, arrivals, new Workload.Fixed(promptLength), outputs, vocab, seed);
    }

    /** The requests as sent, so that other servers (a baseline outside Flover) can replay the same run. */
    private static Map<String, Object> workloadJson(Workload w) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("arrival_ms", w.requests().stream().mapToDouble(r -> r.atNanos() / 1e6).toArray());
        m.put("prompt_ids", w.requests().stream().map(Workload.Request::prompt).toList());
        m.put("output_lens", w.requests().stream().mapToInt(Workload.Request::maxTokens).toArray());
        return m;
    }

    private Variant fusion() {
        return variant("fusion");
    }

    private Variant variant(String policy) {
        Policy p = Policy.parse(policy, maxBatch, Duration.ofMillis(maxQueueDelayMs));
        return new Variant(policy, new SchedulerConfig(p, maxBatch, Math.max(256, maxBatch), Math.max(1024, requests)));
    }

    /** The workload on a fresh server of {@code variant}, warmed by a few short requests first. */
    private Run run(String label, Variant variant, Workload w) throws Exception {
        try (Served s = new Served(variant)) {
            new LoadGenerator.GrpcApi(s.channel, w, TEMPLATE).warmUp(w.requests().getFirst(), WARMUP_REQUESTS);
            Run r = s.measure(label, w);
            if (r.report().completed() < requests) {
                throw new IllegalStateException(String.format("%s, %s: %d of %d requests failed %s", label,
                        variant.name(), requests - r.report().completed(), requests, r.report().failures()));
            }
            return r;
        }
    }

    /** An embedded server on a free loopback port and a channel to it. */
    private final class Served implements AutoCloseable {
        final FloverServer server;
        final ManagedChannel channel;
        final Variant variant;

        Served(Variant variant) throws Exception {
            this.variant = variant;
            server = EmbeddedServer.start(new EmbeddedServer.Options(dir, "127.0.0.1", 0, threads, 1, kvMemory,
                    variant.config(), on));
            // A direct executor: responses are timed on the transport thread as they arrive, with no hand-off.
            channel = Grpc.newChannelBuilder("127.0.0.1:" + server.port(), InsecureChannelCredentials.create())
                    .directExecutor().build();
        }

        Run measure(String label, Workload w) throws Exception {
            Scheduler.Stats before = server.replicas().stats();
            Progress progress = new Progress("bench flover: " + label + ", " + variant.name());
            int n = w.requests().size();
            List<LoadGenerator.Trace> traces = LoadGenerator.run(new LoadGenerator.GrpcApi(channel, w, TEMPLATE), w,
                    t -> progress.update(t.bar(n)));
            BenchReport report = BenchReport.of(traces, 0);
            progress.done(String.format("bench flover: %s, %s: %d requests in %.1f s", label, variant.name(), n,
                    report.durationSeconds()));
            Scheduler.Stats after = idle();
            return new Run(variant, traces, report, after.steps() - before.steps(),
                    after.slotMoves() - before.slotMoves(), after.preemptions() - before.preemptions());
        }

        /** The counters once the step that ended the last request has been published. */
        private Scheduler.Stats idle() throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            Scheduler.Stats s = server.replicas().stats();
            while ((s.running() > 0 || s.waiting() > 0) && System.nanoTime() < deadline) {
                Thread.sleep(1);
                s = server.replicas().stats();
            }
            return s;
        }

        @Override
        public void close() throws InterruptedException {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.close();
            // Its KV cache (a gigabyte by default, on the heap) is garbage now: collected here, between runs, it
            // cannot pause the next one.
            System.gc();
        }
    }

    private static double[] values(List<Run> runs, ToDoubleFunction<Run> f) {
        return runs.stream().mapToDouble(f).toArray();
    }

    /** 2 rather than 2.000, 0.5 rather than 0.5000. */
    private static String number(double x) {
        return new DecimalFormat("0.###", DecimalFormatSymbols.getInstance(Locale.ROOT)).format(x);
    }

    private static Path png(Path prefix, String experiment) {
        return prefix.resolveSibling(prefix.getFileName() + "-" + experiment + ".png");
    }

    private Map<String, Object> modelJson(ModelInfo info, ModelConfig c) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("dir", dir.toString());
        m.put("name", info.getName());
        m.put("architecture", info.getArchitecture());
        m.put("dtype", info.getDtype());
        m.put("hidden_size", c.hiddenSize());
        m.put("layers", c.numLayers());
        m.put("heads", c.numHeads());
        m.put("kv_heads", c.numKvHeads());
        m.put("intermediate_size", c.intermediateSize());
        m.put("vocab_size", c.vocabSize());
        return m;
    }

    private Map<String, Object> settingsJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("requests", requests);
        m.put("prompt_len", promptLength);
        m.put("max_batch", maxBatch);
        m.put("max_queue_delay_ms", maxQueueDelayMs);
        m.put("kv_memory", kv.describe());
        m.put("seed", seed);
        m.put("ignore_eos", true);
        return m;
    }
}
