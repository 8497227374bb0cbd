package io.flover.worker;

/**
 * A token's log-probability under the model (log-softmax of the raw logits, before penalties and temperature), a
 * sampled token's or a prompt token's, and the {@code topIds.length} most likely tokens at its position with
 * theirs, best first.
 */
public record TokenLogprobs(float logprob, int[] topIds, float[] topLogprobs) {
}
