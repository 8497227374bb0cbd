package io.flover.worker;

/**
 * What a step's forward hands back for its logit rows: the argmax of each row (its greedy token), found where the
 * logits are, and the rows themselves ({@code rows * vocabSize} floats) only when they were asked for, since
 * copying them off the device and gathering them across ranks costs far more than the argmax.
 *
 * @param rows null unless asked for
 */
public record LogitRows(int[] argmax, float[] rows) {
}
