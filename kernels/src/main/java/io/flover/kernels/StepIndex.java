package io.flover.kernels;

/**
 * Where the tokens of one fused step sit: token {@code t} has id {@code ids[t]}, sits at {@code positions[t]} of
 * its sequence, whose KV blocks are {@code blockTables[t]} (the same array for every token of a sequence), and
 * {@code logitTokens} lists, in order, the tokens whose hidden states go to the LM head.
 */
public record StepIndex(int[] ids, int[] positions, int[][] blockTables, int[] logitTokens) {
    public StepIndex {
        if (positions.length != ids.length || blockTables.length != ids.length) {
            throw new IllegalArgumentException("a step's per-token arrays differ in length");
        }
        for (int t : logitTokens) {
            if (t < 0 || t >= ids.length) {
                throw new IllegalArgumentException("logit token " + t + " is not a token of the step");
            }
        }
    }

    public int tokens() {
        return ids.length;
    }

    /** The cache row (block {@code table[p / blockSize]}, row {@code p % blockSize}) of every token's position. */
    public int[] cacheRows(int blockSize) {
        int[] rows = new int[ids.length];
        for (int t = 0; t < rows.length; t++) {
            int p = positions[t];
            rows[t] = blockTables[t][p / blockSize] * blockSize + p % blockSize;
        }
        return rows;
    }
}
