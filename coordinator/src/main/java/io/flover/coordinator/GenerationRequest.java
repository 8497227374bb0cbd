package io.flover.coordinator;

import io.flover.model.InvalidFieldException;
import io.flover.model.ModelConfig;
import io.flover.worker.SamplingParams;
import java.util.List;
import java.util.Set;

/**
 * What a client asks for: a prompt (as ids), how many tokens at most (0: none, only the prompt's log-probabilities
 * where the sampling asks for them), how to sample, and when to stop besides the model's end-of-sequence ids
 * (unless {@code ignoreEos}).
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

    /** Rejects a request the model {@code c} cannot serve, naming the offending field. */
    public void validate(ModelConfig c) {
        int[] prompt = promptIds;
        if (prompt.length == 0) {
            throw new InvalidFieldException("prompt", "prompt is empty");
        }
        if (maxTokens < 0) {
            throw new InvalidFieldException("max_tokens", "max_tokens must be at least 0, got " + maxTokens);
        }
        for (int id : prompt) {
            if (id < 0 || id >= c.vocabSize()) {
                throw new InvalidFieldException("prompt", "prompt token id " + id + " is outside the vocabulary [0, "
                        + c.vocabSize() + ")");
            }
        }
        if ((long) prompt.length + maxTokens > c.maxPositions()) {
            throw new InvalidFieldException("max_tokens", "prompt (" + prompt.length + " tokens) plus max_tokens ("
                    + maxTokens + ") exceeds the context length " + c.maxPositions());
        }
    }
}
