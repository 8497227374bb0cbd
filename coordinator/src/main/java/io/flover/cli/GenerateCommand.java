package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.coordinator.GenerationRequest;
import io.flover.coordinator.GenerationResult;
import io.flover.coordinator.Generator;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.LoadedModel;
import io.flover.worker.SamplingParams;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate a continuation of one prompt and print it.")
final class GenerateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", description = "Hugging Face model directory (default: a small random Llama)")
    Path model;

    static final class Prompt {
        @Option(names = "--prompt", required = true, description = "prompt text")
        String text;

        @Option(names = "--prompt-ids", required = true, split = ",", description = "prompt token ids, e.g. 1,2,3")
        int[] ids;
    }

    @ArgGroup(multiplicity = "1")
    Prompt prompt;

    @Option(names = "--max-tokens", defaultValue = "64", description = "tokens to generate at most (default: ${DEFAULT-VALUE})")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 for greedy (default: ${DEFAULT-VALUE})")
    float temperature;

    @Option(names = "--top-k", defaultValue = "0", description = "0 disables (default: ${DEFAULT-VALUE})")
    int topK;

    @Option(names = "--top-p", defaultValue = "1", description = "1 disables (default: ${DEFAULT-VALUE})")
    float topP;

    @Option(names = "--min-p", defaultValue = "0", description = "0 disables (default: ${DEFAULT-VALUE})")
    float minP;

    @Option(names = "--repetition-penalty", defaultValue = "1", description = "1 disables (default: ${DEFAULT-VALUE})")
    float repetitionPenalty;

    @Option(names = "--seed", defaultValue = "0", description = "sampling seed (default: ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--stop", description = "stop string (repeatable)")
    List<String> stop = List.of();

    @Option(names = "--ignore-eos", description = "keep generating past end-of-sequence tokens")
    boolean ignoreEos;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    @Option(names = "--logits", description = "with --json, include first_logits (logits at the last prompt position)")
    boolean logits;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Override
    public Integer call() throws Exception {
        Path dir = model != null ? model : ModelCache.defaultModel();
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--model " + dir + " is not a directory");
        }
        Tokenizer tokenizer = Files.isRegularFile(dir.resolve("tokenizer.json")) ? Tokenizer.load(dir) : null;
        int[] ids;
        if (prompt.text != null) {
            if (tokenizer == null) {
                throw new IllegalArgumentException(dir + " has no tokenizer.json; give --prompt-ids instead of --prompt");
            }
            ids = tokenizer.encode(prompt.text, true);
        } else {
            ids = prompt.ids;
        }
        SamplingParams sampling = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
        GenerationRequest request = new GenerationRequest(ids, maxTokens, sampling, stop, Set.of(), ignoreEos);
        PrintWriter out = spec.commandLine().getOut();
        try (CpuKernels kernels = new CpuKernels(threads); LoadedModel m = LoadedModel.open(dir, kernels)) {
            Generator generator = new Generator(m.lm(), tokenizer);
            if (json) {
                GenerationResult r = generator.generate(request, delta -> { });
                out.println(new ObjectMapper().writeValueAsString(toJson(ids, r)));
            } else {
                if (prompt.text != null) {
                    out.print(prompt.text);
                }
                GenerationResult r = generator.generate(request, delta -> {
                    out.print(delta);
                    out.flush();
                });
                if (r.text() == null) {
                    out.print(Arrays.stream(r.tokenIds()).mapToObj(Integer::toString).collect(Collectors.joining(",")));
                }
                out.println();
            }
        }
        out.flush();
        return 0;
    }

    private Map<String, Object> toJson(int[] promptIds, GenerationResult r) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("token_ids", r.tokenIds());
        o.put("text", r.text());
        o.put("finish_reason", r.finishReason().apiName());
        o.put("usage", Map.of("prompt_tokens", promptIds.length, "completion_tokens", r.tokenIds().length));
        if (logits) {
            o.put("first_logits", r.firstLogits());
        }
        return o;
    }
}
