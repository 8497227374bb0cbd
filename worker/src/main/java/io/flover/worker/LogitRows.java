package io.flover.worker;

/** Picks, from the hidden states of a step, the rows the LM head must see: each sampling sequence's last token. */
final class LogitRows {
    private LogitRows() {
    }

    /** Copies those rows of {@code hidden} (width {@code d}) into the front of {@code out}; returns how many. */
    static int gather(StepBatch batch, float[] hidden, int d, float[] out) {
        int rows = 0;
        for (int s = 0; s < batch.numSequences(); s++) {
            if (batch.wantLogits()[s]) {
                int last = batch.seqStart()[s] + batch.seqLength()[s] - 1;
                System.arraycopy(hidden, last * d, out, rows * d, d);
                rows++;
            }
        }
        return rows;
    }
}
