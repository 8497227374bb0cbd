package io.flover.worker;

import io.flover.kernels.StepIndex;
import java.util.Arrays;

/**
 * The tokens of one fused step, flattened with no padding: sequence {@code s} contributes the tokens
 * {@code tokens[seqStart[s] .. seqStart[s] + seqLength[s])} (a prefill chunk, or one decode token) at
 * consecutive positions starting from {@code firstPosition[s]}. Its KV rows live in the blocks of
 * {@code blockTables[s]}. Logits are produced for the last token of every sequence with
 * {@code wantLogits[s]}, in sequence order (the rows a sampler reads), and then for each token
 * {@code scoredTokens[j]} of the flat list, which scores the id {@code scoreTargets[j]} (a prompt's next token).
 */
public record StepBatch(int[] tokens, int[] seqStart, int[] seqLength, int[] firstPosition,
                        int[][] blockTables, boolean[] wantLogits, int[] scoredTokens, int[] scoreTargets) {

    public StepBatch {
        int n = seqStart.length;
        if (seqLength.length != n || firstPosition.length != n || blockTables.length != n || wantLogits.length != n) {
            throw new IllegalArgumentException("per-sequence arrays of a step differ in length");
        }
        int next = 0;
        for (int s = 0; s < n; s++) {
            if (seqStart[s] != next || seqLength[s] < 1) {
                throw new IllegalArgumentException("sequence " + s + " does not continue the flat token list");
            }
            next += seqLength[s];
        }
        if (next != tokens.length) {
            throw new IllegalArgumentException("sequences cover " + next + " tokens, the step has " + tokens.length);
        }
        if (scoreTargets.length != scoredTokens.length) {
            throw new IllegalArgumentException(scoredTokens.length + " scored tokens, " + scoreTargets.length
                    + " targets");
        }
    }

    /** A step that scores no token. */
    public StepBatch(int[] tokens, int[] seqStart, int[] seqLength, int[] firstPosition, int[][] blockTables,
                     boolean[] wantLogits) {
        this(tokens, seqStart, seqLength, firstPosition, blockTables, wantLogits, new int[0], new int[0]);
    }

    /** A step of a single sequence: {@code tokens} at positions {@code firstPosition...}, logits for the last. */
    public static StepBatch single(int[] tokens, int firstPosition, int[] blockTable) {
        return new StepBatch(tokens, new int[] {0}, new int[] {tokens.length}, new int[] {firstPosition},
                new int[][] {blockTable}, new boolean[] {true});
    }

    public int numTokens() {
        return tokens.length;
    }

    public int numSequences() {
        return seqStart.length;
    }

    /** Sequences whose last token gets logits to sample from: the first rows of the logits. */
    public int numSampleRows() {
        int n = 0;
        for (boolean w : wantLogits) {
            n += w ? 1 : 0;
        }
        return n;
    }

    /** Rows of the logits: the sample rows, then the scored tokens'. */
    public int numLogitRows() {
        return numSampleRows() + scoredTokens.length;
    }

    /** What the kernels need to know of the step's tokens. */
    public StepIndex index() {
        int[] logitTokens = new int[numLogitRows()];
        int row = 0;
        for (int s = 0; s < seqStart.length; s++) {
            if (wantLogits[s]) {
                logitTokens[row++] = seqStart[s] + seqLength[s] - 1;
            }
        }
        System.arraycopy(scoredTokens, 0, logitTokens, row, scoredTokens.length);
        return new StepIndex(tokens, positions(), tokenBlockTables(), logitTokens);
    }

    /** Position of every token of the flat list. */
    private int[] positions() {
        int[] p = new int[tokens.length];
        for (int s = 0; s < seqStart.length; s++) {
            for (int i = 0; i < seqLength[s]; i++) {
                p[seqStart[s] + i] = firstPosition[s] + i;
            }
        }
        return p;
    }

    /** The block table of the sequence of every token of the flat list. */
    private int[][] tokenBlockTables() {
        int[][] t = new int[tokens.length][];
        for (int s = 0; s < seqStart.length; s++) {
            Arrays.fill(t, seqStart[s], seqStart[s] + seqLength[s], blockTables[s]);
        }
        return t;
    }
}
