package io.flover.worker;

/**
 * What a step's forward hands back for its logit rows: the argmax of each row (its greedy token), found where the
 * logits are, the rows themselves ({@code rows * vocabSize} floats) only when they were asked for, since copying
 * them off the device and gathering them across ranks costs far more than the argmax, and each row's
 * {@link Logprobs} when a sequence asked for them.
 *
 * @param rows null unless asked for
 * @param logprobs null unless asked for
 */
public record LogitRows(int[] argmax, float[] rows, Logprobs logprobs) {
    public LogitRows(int[] argmax, float[] rows) {
        this(argmax, rows, null);
    }

    /**
     * Each row's log-sum-exp over the whole vocabulary and its {@code n} best tokens (best first, the lower id first
     * among equals), which is all a token's log-probability needs: {@code logit - logSumExp}; and the logit of the
     * id a row scores (-inf for a row that scores none).
     */
    public record Logprobs(int n, float[] logSumExp, int[] topIds, float[] topLogits, float[] targetLogits) {
        public float logprob(int row, float logit) {
            return logit - logSumExp[row];
        }
    }
}
