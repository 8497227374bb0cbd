package io.flover.coordinator;

import io.flover.worker.SamplingParams;
import java.util.List;
import java.util.Set;

/**
 * What a client asks for: a prompt (as ids), how many tokens at most, how to sample, and when to stop besides
 * the model's end-of-sequence ids (unless {@code ignoreEos}).
 */
public record GenerationRequest(int[] promptIds, int maxTokens, SamplingParams sampling, List<String> stopStrings,
                                Set<Integer> stopTokenIds, boolean ignoreEos) {
    public GenerationRequest {
        promptIds = promptIds.clone();
        stopStrings = List.copyOf(stopStrings);
        stopTokenIds = Set.copyOf(stopTokenIds);
    }

    public static GenerationRequest greedy(int[] promptIds, int maxTokens) {
        return new GenerationRequest(promptIds, maxTokens, SamplingParams.GREEDY, List.of(), Set.of(), false);
    }

    /** The same request, generating past end-of-sequence ids. */
    public GenerationRequest withIgnoreEos() {
        return new GenerationRequest(promptIds, maxTokens, sampling, stopStrings, stopTokenIds, true);
    }

    @Override
    public int[] promptIds() {
        return promptIds.clone();
    }
}
