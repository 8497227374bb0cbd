package io.flover.worker;

import java.util.List;

/**
 * One fused step, as the coordinator sends it to every rank of a group: slot operations to apply first, then the
 * flat token list of the step, in which entry {@code i} gives slot {@code slots[i]} the next {@code lengths[i]}
 * tokens (a prefill chunk or one decode token) from position {@code firstPositions[i]}, and asks for a sampled
 * token after the last of them when {@code sample[i]}.
 *
 * <p>Where {@code promptLogprobs[i]} (empty when no entry asks), the entry's tokens are part of a prompt whose
 * log-probabilities are asked: each of them after the first is scored by the logits of the token before it, and
 * an entry that does not sample (its prompt goes on in a later step) also scores the prompt's next token, its
 * entry in {@code nextPromptTokens}, by the logits of its last one.
 */
public record Step(long id, List<SlotOp> slotOps, int[] tokens, int[] slots, int[] lengths, int[] firstPositions,
                   boolean[] sample, boolean[] promptLogprobs, int[] nextPromptTokens) {
    public Step {
        slotOps = List.copyOf(slotOps);
        if (lengths.length != slots.length || firstPositions.length != slots.length || sample.length != slots.length) {
            throw new IllegalArgumentException("per-entry arrays of step " + id + " differ in length");
        }
        if (promptLogprobs.length != 0 && promptLogprobs.length != slots.length) {
            throw new IllegalArgumentException("prompt_logprobs of step " + id + " has " + promptLogprobs.length
                    + " entries where slots has " + slots.length);
        }
        int continued = 0;
        for (int i = 0; i < promptLogprobs.length; i++) {
            continued += promptLogprobs[i] && !sample[i] ? 1 : 0;
        }
        if (nextPromptTokens.length != continued) {
            throw new IllegalArgumentException("next_prompt_tokens of step " + id + " has " + nextPromptTokens.length
                    + " entries where " + continued + " prompts go on past the step");
        }
    }

    /** A step that asks for no prompt log-probabilities. */
    public Step(long id, List<SlotOp> slotOps, int[] tokens, int[] slots, int[] lengths, int[] firstPositions,
                boolean[] sample) {
        this(id, slotOps, tokens, slots, lengths, firstPositions, sample, new boolean[0], new int[0]);
    }

    /** Entries that sample a token, i.e. the length of the step's result. */
    public int numSampled() {
        int n = 0;
        for (boolean s : sample) {
            n += s ? 1 : 0;
        }
        return n;
    }

    /** Whether entry {@code i} scores prompt tokens. */
    public boolean scoresPrompt(int i) {
        return promptLogprobs.length > 0 && promptLogprobs[i];
    }

    /** How many prompt tokens entry {@code i} scores: one per token it feeds, less the one it samples after. */
    public int promptTokensScored(int i) {
        return scoresPrompt(i) ? lengths[i] - (sample[i] ? 1 : 0) : 0;
    }
}
