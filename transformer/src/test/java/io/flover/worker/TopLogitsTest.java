package io.flover.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Vocabulary slices summarised apart and merged give the whole row's log-sum-exp, best tokens and the logit of the
 * id it scores.
 */
class TopLogitsTest {
    @Test
    void unevenSlicesAndAnEmptyOneMergeToTheWholeRow() {
        int vocab = 37, rows = 3, n = 4;
        int[][] slices = {{0, 16}, {16, 32}, {32, 37}, {37, 37}}; // the last rank of an uneven split holds nothing
        float[][] logits = new float[rows][vocab];
        Random random = new Random(7);
        for (float[] row : logits) {
            for (int j = 0; j < vocab; j++) {
                row[j] = (float) random.nextGaussian() * 3;
            }
        }
        logits[1][5] = logits[1][20]; // a tie across slices: the lower id ranks first
        int[] targets = {3, 33, -1}; // held by the first slice, by the third, none
        int w = TopLogits.width(n);
        float[] gathered = new float[slices.length * rows * w];
        for (int rank = 0; rank < slices.length; rank++) {
            int first = slices[rank][0], held = slices[rank][1] - first;
            float[] slice = new float[rows * held];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(logits[r], first, slice, r * held, held);
            }
            float[] summary = new float[rows * w];
            TopLogits.summarise(slice, rows, held, first, n, targets, summary);
            System.arraycopy(summary, 0, gathered, rank * rows * w, rows * w);
        }
        LogitRows.Logprobs merged = TopLogits.merge(gathered, slices.length, rows, n);
        for (int r = 0; r < rows; r++) {
            float[] row = logits[r];
            double max = Double.NEGATIVE_INFINITY;
            for (float v : row) {
                max = Math.max(max, v);
            }
            double sum = 0;
            for (float v : row) {
                sum += Math.exp(v - max);
            }
            assertEquals(max + Math.log(sum), merged.logSumExp()[r], 1e-5, "row " + r);
            assertEquals(targets[r] < 0 ? Float.NEGATIVE_INFINITY : row[targets[r]], merged.targetLogits()[r],
                    "row " + r);
            Integer[] order = new Integer[vocab];
            Arrays.setAll(order, i -> i);
            Arrays.sort(order, (a, b) -> row[a] != row[b] ? Float.compare(row[b], row[a]) : Integer.compare(a, b));
            int[] best = new int[n];
            float[] bestLogits = new float[n];
            for (int k = 0; k < n; k++) {
                best[k] = order[k];
                bestLogits[k] = row[order[k]];
            }
            assertArrayEquals(best, Arrays.copyOfRange(merged.topIds(), r * n, r * n + n), "row " + r);
            assertArrayEquals(bestLogits, Arrays.copyOfRange(merged.topLogits(), r * n, r * n + n), "row " + r);
        }
    }
}
