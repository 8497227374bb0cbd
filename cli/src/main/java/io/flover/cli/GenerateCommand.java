package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.coordinator.GenerationResult;
import io.flover.coordinator.Generator;
import io.flover.kernels.Backend;
import io.flover.kernels.Device;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.LoadedModel;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate a continuation of one prompt and print it, locally or on a Flover server.")
final class GenerateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", description = "Hugging Face model directory (default: a small random Llama)")
    Path model;

    @Option(names = "--server", paramLabel = "HOST:PORT", description = "generate on this Flover server instead")
    String server;

    @Mixin
    ClientFlags client;

    @Mixin
    GenerationFlags flags;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    @Option(names = "--logits", description = "with --json, include first_logits (logits at the last prompt position)")
    boolean logits;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Mixin
    DeviceFlags device;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        if (server != null) {
            if (model != null) {
                throw new IllegalArgumentException("--model and --server cannot be combined: the server has its model");
            }
            if (logits) {
                throw new IllegalArgumentException("--logits is not available with --server");
            }
            RemoteGeneration.run(server, client, flags.proto(), json, out);
        } else {
            generateLocally(out);
        }
        out.flush();
        return 0;
    }

    private void generateLocally(PrintWriter out) throws Exception {
        Path dir = model != null ? model : ModelCache.defaultModel();
        if (!Files.exists(dir)) {
            throw new IllegalArgumentException("--model " + dir + " does not exist");
        }
        Tokenizer tokenizer = Tokenizer.exists(dir) ? Tokenizer.load(dir) : null;
        int[] ids;
        if (flags.prompt.text != null) {
            if (tokenizer == null) {
                throw new IllegalArgumentException(dir + " has no tokenizer (tokenizer.json or GGUF tokenizer metadata);"
                        + " give --prompt-ids instead of --prompt");
            }
            ids = tokenizer.encode(flags.prompt.text, true);
        } else {
            ids = flags.prompt.ids;
        }
        var request = flags.request(ids);
        Device on = device.device();
        try (Backend backend = on.open(threads); LoadedModel m = LoadedModel.open(dir, backend)) {
            Generator generator = new Generator(m.lm(), tokenizer);
            if (json) {
                GenerationResult r = generator.generate(request, delta -> { });
                Map<String, Object> o = json(r.tokenIds(), r.text(), r.finishReason().apiName(), ids.length);
                if (logits) {
                    o.put("first_logits", r.firstLogits());
                }
                out.println(new ObjectMapper().writeValueAsString(o));
            } else {
                if (flags.prompt.text != null) {
                    out.print(flags.prompt.text);
                }
                GenerationResult r = generator.generate(request, delta -> {
                    out.print(delta);
                    out.flush();
                });
                if (r.text() == null) {
                    out.print(joinIds(r.tokenIds()));
                }
                out.println();
            }
        }
    }

    /** The JSON object of {@code --json}, the same locally and from a server. */
    static Map<String, Object> json(int[] tokenIds, String text, String finishReason, int promptTokens) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("token_ids", tokenIds);
        o.put("text", text);
        o.put("finish_reason", finishReason);
        o.put("usage", Map.of("prompt_tokens", promptTokens, "completion_tokens", tokenIds.length));
        return o;
    }

    /** What text mode prints for a model without a tokenizer. */
    static String joinIds(int[] ids) {
        return Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(","));
    }
}
