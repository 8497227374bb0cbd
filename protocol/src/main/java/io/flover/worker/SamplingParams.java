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
 *     (prompt and output)
 * @param presencePenalty 0 disables; subtracted from the logit of every token the output holds (OpenAI's)
 * @param frequencyPenalty 0 disables; subtracted once per time the output holds the token (OpenAI's)
 * @param minTokens until the output has this many tokens, {@code bannedEarly} are never chosen
 * @param bannedEarly the ids that would end the sequence (end-of-sequence and stop ids), for {@code minTokens}
 * @param logprobs -1: none; 0: each sampled token's log-probability; N: and the N most likely tokens' (at most
 *     {@value #MAX_LOGPROBS})
 * @param promptLogprobs the same for each prompt token after the first, by the logits of the token before it
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty,
                             float presencePenalty, float frequencyPenalty, int minTokens, int[] bannedEarly,
                             int logprobs, int promptLogprobs, long seed) {
    public static final int MAX_LOGPROBS = 20;
    public static final SamplingParams GREEDY = new SamplingParams(0, 0, 1, 0, 1, 0);

    public SamplingParams {
        check("temperature", temperature, temperature >= 0);
        check("top_k", topK, topK >= 0);
        check("top_p", topP, topP > 0 && topP <= 1);
        check("min_p", minP, minP >= 0 && minP <= 1);
        check("repetition_penalty", repetitionPenalty, repetitionPenalty > 0);
        check("presence_penalty", presencePenalty, presencePenalty >= -2 && presencePenalty <= 2);
        check("frequency_penalty", frequencyPenalty, frequencyPenalty >= -2 && frequencyPenalty <= 2);
        check("min_tokens", minTokens, minTokens >= 0);
        check("logprobs", logprobs, logprobs >= -1 && logprobs <= MAX_LOGPROBS);
        check("prompt_logprobs", promptLogprobs, promptLogprobs >= -1 && promptLogprobs <= MAX_LOGPROBS);
        bannedEarly = bannedEarly.clone();
    }

    /** Without the output penalties and {@code min_tokens}. */
    public SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty, long seed) {
        this(temperature, topK, topP, minP, repetitionPenalty, 0, 0, 0, new int[0], -1, -1, seed);
    }

    @Override
    public int[] bannedEarly() {
        return bannedEarly.clone();
    }

    /** Whether anything but the temperature and the filters changes the logits. */
    boolean penalised() {
        return repetitionPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0 || minTokens > 0;
    }

    public boolean greedy() {
        return temperature == 0;
    }

    /** Whether the token is the argmax of the logits as they come, which a backend finds without copying them. */
    public boolean argmaxOfLogits() {
        return greedy() && !penalised();
    }

    private static void check(String field, double value, boolean ok) {
        if (!ok || Double.isNaN(value) || Double.isInfinite(value)) {
            throw new InvalidFieldException(field, field + " is out of range: " + value);
        }
    }
}
