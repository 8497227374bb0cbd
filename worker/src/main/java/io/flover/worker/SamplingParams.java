package io.flover.worker;

import io.flover.model.InvalidFieldException;

/**
 * How to choose the next token. {@code temperature == 0} is greedy (argmax); otherwise the logits are penalised,
 * scaled, filtered by top-k, top-p and min-p (in that order, as Hugging Face {@code generate} does) and sampled
 * with a generator seeded by {@code seed} and the position of the token, so a request replays identically.
 *
 * @param topK 0 disables
 * @param topP 1 disables
 * @param minP 0 disables
 * @param repetitionPenalty 1 disables; divides positive and multiplies negative logits of tokens already seen
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty, long seed) {
    public static final SamplingParams GREEDY = new SamplingParams(0, 0, 1, 0, 1, 0);

    public SamplingParams {
        check("temperature", temperature, temperature >= 0);
        check("top_k", topK, topK >= 0);
        check("top_p", topP, topP > 0 && topP <= 1);
        check("min_p", minP, minP >= 0 && minP <= 1);
        check("repetition_penalty", repetitionPenalty, repetitionPenalty > 0);
    }

    public boolean greedy() {
        return temperature == 0;
    }

    /** Whether the token is the argmax of the logits as they come, which a backend finds without copying them. */
    public boolean argmaxOfLogits() {
        return greedy() && repetitionPenalty == 1;
    }

    private static void check(String field, double value, boolean ok) {
        if (!ok || Double.isNaN(value) || Double.isInfinite(value)) {
            throw new InvalidFieldException(field, field + " is out of range: " + value);
        }
    }
}
