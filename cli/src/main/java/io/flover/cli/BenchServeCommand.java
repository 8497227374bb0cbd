package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.sun.management.OperatingSystemMXBean;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ListModelsRequest;
import io.flover.proto.v1.ModelInfo;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Drive a running server with a seeded workload over the gRPC API (streaming Generate calls "
                + "with token-id prompts) or the OpenAI HTTP API (streaming completions) and report throughput, TTFT, TPOT, inter-token and end-to-end latency, "
                + "all timed on the client.",
                "Lengths are N, uniform MIN:MAX, or lognormal:MEAN:SIGMA[:MAX] (log-normal with mean MEAN tokens and "
                        + "log-space standard deviation SIGMA, rounded and clipped to [1, MAX])."})
final class BenchServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ClientFlags client;

    @Option(names = "--server", paramLabel = "HOST:PORT", description = "the server to drive")
    String server;

    @Option(names = "--api", paramLabel = "API", defaultValue = "grpc", description = "grpc (flover.v1.Generation) or "
            + "openai (streaming /v1/completions; --server is then the HTTP API's HOST:PORT) (default: ${DEFAULT-VALUE})")
    String api;

    @Option(names = "--self-test", description = "instead of --server, drive a server in this process whose steps "
            + "compute nothing: the latencies and CPU measured are the generator's, the API's and the scheduler's")
    boolean selfTest;

    @Option(names = "--requests", paramLabel = "N", defaultValue = "100",
            description = "requests to send (default: ${DEFAULT-VALUE})")
    int requests;

    @Option(names = "--rate", paramLabel = "R",
            description = "Poisson arrivals of R requests/s on average, or 'inf' to send all at once (the default)")
    String rate;

    @Option(names = "--interval-ms", paramLabel = "T", description = "instead of --rate, one request every T ms")
    Double intervalMs;

    @Option(names = "--prompt-len", paramLabel = "LENGTHS", defaultValue = "32",
            description = "prompt tokens (random ids below the model's vocabulary size) (default: ${DEFAULT-VALUE})")
    String promptLength;

    @Option(names = "--output-len", paramLabel = "LENGTHS", defaultValue = "128",
            description = "max_tokens of each request (default: ${DEFAULT-VALUE})")
    String outputLength;

    @Option(names = "--ignore-eos",
            description = "generate past end-of-sequence ids, so outputs have the requested lengths")
    boolean ignoreEos;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "1", description = "requests sent one at a time "
            + "before the run and not counted: they check that the server takes the workload's requests and load the "
            + "client's code (default: ${DEFAULT-VALUE})")
    int warmup;

    @Option(names = "--seed", paramLabel = "SEED", defaultValue = "1",
            description = "seed of the whole workload (default: ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--json", paramLabel = "FILE", description = "also write the results (and every request's) as JSON")
    Path json;

    @Option(names = "--plot", paramLabel = "FILE", description = "write a PNG of the latency distribution and "
            + "throughput over time (default: beside --json, with the extension .png)")
    Path plot;

    @Override
    public Integer call() throws Exception {
        if (selfTest == (server != null)) {
            throw new IllegalArgumentException("--server HOST:PORT is required (or --self-test), and not both");
        }
        if (requests < 1) {
            throw new IllegalArgumentException("--requests must be at least 1, got " + requests);
        }
        if (warmup < 0) {
            throw new IllegalArgumentException("--warmup must not be negative, got " + warmup);
        }
        if (!api.equals("grpc") && !api.equals("openai")) {
            throw new IllegalArgumentException("--api must be grpc or openai, got '" + api + "'");
        }
        Workload.Arrivals arrivals = arrivals();
        Workload.Lengths prompts = Workload.Lengths.parse("--prompt-len", promptLength);
        Workload.Lengths outputs = Workload.Lengths.parse("--output-len", outputLength);
        Path png = plot != null ? plot : json == null ? null
                : json.resolveSibling(json.getFileName().toString().replaceFirst("(\\.json)?$", ".png"));

        try (InstantServer instant = selfTest ? InstantServer.start() : null) {
            if (api.equals("openai")) {
                String target = selfTest ? "127.0.0.1:" + instant.httpPort() : server;
                OpenAiLoad http = new OpenAiLoad(target, ignoreEos);
                OpenAiLoad.Model m = http.model();
                ModelInfo model = ModelInfo.newBuilder().setName(m.name()).setContextLength(m.contextLength())
                        .setVocabSize(m.vocabSize()).build();
                Workload workload = Workload.generate(requests, arrivals, prompts, outputs, model.getVocabSize(), seed);
                http.prepare(workload);
                run(http, workload, selfTest ? "self-test" : "http://" + target, model, arrivals, png);
            } else {
                grpc(selfTest ? "127.0.0.1:" + instant.grpcPort() : RemoteGeneration.target(server), arrivals,
                        prompts, outputs, png);
            }
        }
        return 0;
    }

    private void grpc(String target, Workload.Arrivals arrivals, Workload.Lengths prompts, Workload.Lengths outputs,
                      Path png) throws Exception {
        // A direct executor: responses are timed on the transport thread as they arrive, with no hand-off.
        ManagedChannel channel = (selfTest ? Grpc.newChannelBuilder(target, InsecureChannelCredentials.create())
                : client.channel(target)).directExecutor().build();
        try {
            ModelInfo model = model(channel);
            Workload workload = Workload.generate(requests, arrivals, prompts, outputs, model.getVocabSize(), seed);
            GenerateRequest template = GenerateRequest.newBuilder().setIgnoreEos(ignoreEos).build();
            run(new LoadGenerator.GrpcApi(channel, workload, template), workload, selfTest ? "self-test" : target,
                    model, arrivals, png);
        } catch (StatusRuntimeException e) {
            throw RemoteGeneration.failure(e);
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private void run(LoadGenerator.Api client, Workload workload, String target, ModelInfo model,
                     Workload.Arrivals arrivals, Path png) throws Exception {
        checkContext(workload, model);
        client.warmUp(workload.requests().getFirst(), warmup);
        PrintWriter out = spec.commandLine().getOut();
        out.printf("%s, model %s (vocabulary %d, context %d)%n", target, model.getName(), model.getVocabSize(),
                model.getContextLength());
        out.printf("%d requests, %s, prompt %s tokens, output %s tokens%s, seed %d%n%n", requests, arrivals,
                promptLength, outputLength, ignoreEos ? " (ignore_eos)" : "", seed);
        out.flush();

        Progress progress = new Progress("bench serve");
        OperatingSystemMXBean os = ManagementFactory.getPlatformMXBean(OperatingSystemMXBean.class);
        long cpu = os.getProcessCpuTime();
        List<LoadGenerator.Trace> traces = LoadGenerator.run(client, workload, t -> progress.update(t.bar(requests)));
        BenchReport report = BenchReport.of(traces, (os.getProcessCpuTime() - cpu) / 1e9);
        progress.done(String.format("bench serve: %d requests in %.1f s", requests, report.durationSeconds()));

        report.print(out);
        if (json != null) {
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
                    .writeValue(json.toFile(), json(target, model, arrivals, report, traces));
        }
        if (png != null && report.completed() > 0) {
            BenchPlot.write(png, traces);
        } else if (png != null) {
            System.err.println("bench serve: no plot, as no request completed");
        }
    }

    private Workload.Arrivals arrivals() {
        if (intervalMs != null) {
            if (rate != null) {
                throw new IllegalArgumentException("--rate and --interval-ms cannot be combined");
            }
            if (!(intervalMs > 0) || intervalMs.isInfinite()) {
                throw new IllegalArgumentException("--interval-ms must be a positive number of ms, got " + intervalMs);
            }
            return Workload.Arrivals.every(intervalMs);
        }
        if (rate == null || rate.equalsIgnoreCase("inf")) {
            return Workload.Arrivals.poisson(Double.POSITIVE_INFINITY);
        }
        try {
            double r = Double.parseDouble(rate);
            if (r > 0 && Double.isFinite(r)) {
                return Workload.Arrivals.poisson(r);
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("--rate must be a positive number of requests/s or 'inf', got '"
                + rate + "'");
    }

    private static ModelInfo model(ManagedChannel channel) {
        List<ModelInfo> models = GenerationGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
                .listModels(ListModelsRequest.getDefaultInstance()).getModelsList();
        if (models.isEmpty()) {
            throw new IllegalStateException("the server lists no model");
        }
        return models.getFirst();
    }

    /** The server would refuse these requests one by one; better to say so before sending any. */
    private static void checkContext(Workload workload, ModelInfo model) {
        for (Workload.Request r : workload.requests()) {
            if ((long) r.prompt().length + r.maxTokens() > model.getContextLength()) {
                throw new IllegalArgumentException(String.format("--prompt-len/--output-len: a request of %d prompt "
                        + "and %d output tokens does not fit the model's context of %d (lognormal lengths take a MAX)",
                        r.prompt().length, r.maxTokens(), model.getContextLength()));
            }
        }
    }

    private Map<String, Object> json(String target, ModelInfo model, Workload.Arrivals arrivals, BenchReport report,
                                     List<LoadGenerator.Trace> traces) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("server", target);
        m.put("api", api);
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("name", model.getName());
        info.put("architecture", model.getArchitecture());
        info.put("dtype", model.getDtype());
        info.put("vocab_size", model.getVocabSize());
        info.put("context_length", model.getContextLength());
        m.put("model", info);
        Map<String, Object> w = new LinkedHashMap<>();
        w.put("requests", requests);
        w.put("arrivals", Double.isInfinite(arrivals.perSecond()) ? "all_at_once"
                : arrivals.poisson() ? "poisson" : "constant");
        w.put("rate_per_s", Double.isInfinite(arrivals.perSecond()) ? "inf" : arrivals.perSecond());
        w.put("prompt_len", promptLength);
        w.put("output_len", outputLength);
        w.put("ignore_eos", ignoreEos);
        w.put("seed", seed);
        m.put("workload", w);
        m.putAll(report.json());
        m.put("per_request", BenchReport.perRequest(traces));
        return m;
    }
}
