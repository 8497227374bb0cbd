package io.flover.worker;

/**
 * What a step returns: one sampled id per entry that samples, in entry order, and, where any asked, their
 * {@link TokenLogprobs} (null where a sequence did not ask); and the log-probability of each prompt token the step
 * scored ({@link Step#promptLogprobs()}), in entry order and then position order.
 *
 * @param logprobs null when no sequence of the step asked
 * @param promptLogprobs null when the step scored no prompt token
 */
public record StepResult(int[] sampled, TokenLogprobs[] logprobs, TokenLogprobs[] promptLogprobs) {
    public StepResult(int[] sampled, TokenLogprobs[] logprobs) {
        this(sampled, logprobs, null);
    }

    public static StepResult of(int[] sampled) {
        return new StepResult(sampled, null);
    }
}
