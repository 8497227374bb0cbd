package io.flover.worker;

/**
 * A sampled token's log-probability under the model (log-softmax of the raw logits, before penalties and
 * temperature), and the {@code topIds.length} most likely tokens of that step with theirs, best first.
 */
public record TokenLogprobs(float logprob, int[] topIds, float[] topLogprobs) {
}
