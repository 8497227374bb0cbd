package io.flover.cli;

import io.flover.coordinator.GenerationRequest;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.TokenIds;
import io.flover.worker.SamplingParams;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Option;

/**
 * The flags that say what to generate, shared by local generation and {@code --server}, and the request each path
 * sends. Both paths get the same defaults (including seed 0), so one command line means the same thing either way.
 */
final class GenerationFlags {
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

    /** The request for the local engine, over the prompt's ids (tokenized by the caller when given as text). */
    GenerationRequest request(int[] promptIds) {
        return new GenerationRequest(promptIds, maxTokens, sampling(), stop, Set.of(), ignoreEos);
    }

    /** Checked here for both paths, so bad values fail alike (naming the field) with or without a server. */
    private SamplingParams sampling() {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    /** The request for a server, which validates it and tokenizes a text prompt itself. */
    GenerateRequest proto() {
        if (maxTokens < 1) {
            // 0 would mean the server's default on the wire; a negative count would wrap around as uint32
            throw new IllegalArgumentException("max_tokens must be at least 1, got " + maxTokens);
        }
        SamplingParams s = sampling();
        GenerateRequest.Builder r = GenerateRequest.newBuilder()
                .setMaxTokens(maxTokens)
                .setSampling(io.flover.proto.v1.SamplingParams.newBuilder()
                        .setTemperature(s.temperature())
                        .setTopK(s.topK())
                        .setTopP(s.topP())
                        .setMinP(s.minP())
                        .setRepetitionPenalty(s.repetitionPenalty())
                        .setSeed(s.seed()))
                .addAllStop(stop)
                .setIgnoreEos(ignoreEos);
        if (prompt.text != null) {
            r.setText(prompt.text);
        } else {
            r.setTokenIds(TokenIds.newBuilder().addAllIds(Arrays.stream(prompt.ids).boxed().toList()));
        }
        return r.build();
    }
}
