package io.flover.worker;

/**
 * What a step returns: one sampled id per entry that samples, in entry order, and, where any asked, their
 * {@link TokenLogprobs} (null where a sequence did not ask).
 *
 * @param logprobs null when no sequence of the step asked
 */
public record StepResult(int[] sampled, TokenLogprobs[] logprobs) {
    public static StepResult of(int[] sampled) {
        return new StepResult(sampled, null);
    }
}
