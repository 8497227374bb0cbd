package io.flover.worker;

/**
 * One vocabulary slice's summary of a logit row, and the merge of every rank's: the maximum, the sum of
 * {@code exp(logit - maximum)}, the logit of the row's target id (a prompt token it scores) where the slice holds
 * it, and the {@code n} best (logit, id) pairs. A rank's slice gives {@code 3 + 2n} floats per row, so a
 * tensor-parallel group trades O(rows x n) numbers, never its logits, and every rank merges them in rank order to
 * the same log-sum-exp, target logit and top tokens.
 */
final class TopLogits {
    private TopLogits() {
    }

    /** Floats per row of a slice's summary. */
    static int width(int n) {
        return 3 + 2 * n;
    }

    /**
     * Summarises {@code rows} rows of {@code held} logits each ({@code logits[r * held + j]} is token
     * {@code firstId + j}) into {@code out[r * width(n) ..]}: max, sum of exp(l - max), the logit of id
     * {@code targets[r]} (-inf where the slice does not hold it or the row has none, -1), n logits, n ids (as
     * floats, exact below 2^24). Slots past the slice's size hold -inf.
     */
    static void summarise(float[] logits, int rows, int held, int firstId, int n, int[] targets, float[] out) {
        int w = width(n);
        for (int r = 0; r < rows; r++) {
            int o = r * w;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < held; j++) {
                float v = logits[r * held + j];
                if (v > max) {
                    max = v;
                }
            }
            double sum = 0;
            for (int j = 0; j < held; j++) { // one order per row, whatever the batch
                float v = logits[r * held + j];
                if (!Float.isNaN(v)) {
                    sum += Math.exp((double) v - max);
                }
            }
            out[o] = max;
            out[o + 1] = (float) sum;
            int target = targets[r] - firstId;
            out[o + 2] = targets[r] >= 0 && target >= 0 && target < held ? logits[r * held + target]
                    : Float.NEGATIVE_INFINITY;
            for (int k = 0; k < n; k++) {
                out[o + 3 + k] = Float.NEGATIVE_INFINITY;
                out[o + 3 + n + k] = -1;
            }
            for (int j = 0; j < held; j++) {
                insert(out, o + 3, n, logits[r * held + j], firstId + j);
            }
        }
    }

    /** Merges the ranks' summaries ({@code gathered}: rank after rank, each {@code rows * width(n)} floats). */
    static LogitRows.Logprobs merge(float[] gathered, int ranks, int rows, int n) {
        int w = width(n);
        float[] lse = new float[rows];
        float[] targets = new float[rows];
        int[] ids = new int[rows * n];
        float[] top = new float[rows * n];
        float[] best = new float[2 * n];
        for (int r = 0; r < rows; r++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int rank = 0; rank < ranks; rank++) {
                max = Math.max(max, gathered[(rank * rows + r) * w]);
            }
            double sum = 0;
            float target = Float.NEGATIVE_INFINITY;
            for (int k = 0; k < n; k++) {
                best[k] = Float.NEGATIVE_INFINITY;
                best[n + k] = -1;
            }
            for (int rank = 0; rank < ranks; rank++) {
                int o = (rank * rows + r) * w;
                if (gathered[o] != Float.NEGATIVE_INFINITY) { // a rank holding no vocabulary adds nothing
                    sum += gathered[o + 1] * Math.exp((double) gathered[o] - max);
                }
                target = Math.max(target, gathered[o + 2]); // one rank holds it; the others say -inf
                for (int k = 0; k < n; k++) {
                    if (gathered[o + 3 + n + k] >= 0) {
                        insert(best, 0, n, gathered[o + 3 + k], (int) gathered[o + 3 + n + k]);
                    }
                }
            }
            lse[r] = (float) (max + Math.log(sum));
            targets[r] = target;
            for (int k = 0; k < n; k++) {
                top[r * n + k] = best[k];
                ids[r * n + k] = (int) best[n + k];
            }
        }
        return new LogitRows.Logprobs(n, lse, ids, top, targets);
    }

    /** Puts (logit, id) among the n best at {@code a[at ..]} (logits, then ids), if it belongs there. */
    private static void insert(float[] a, int at, int n, float logit, int id) {
        if (n == 0 || Float.isNaN(logit)) {
            return;
        }
        int k = n;
        while (k > 0 && better(logit, id, a[at + k - 1], (int) a[at + n + k - 1])) {
            k--;
        }
        if (k == n) {
            return;
        }
        for (int j = n - 1; j > k; j--) {
            a[at + j] = a[at + j - 1];
            a[at + n + j] = a[at + n + j - 1];
        }
        a[at + k] = logit;
        a[at + n + k] = id;
    }

    private static boolean better(float logit, int id, float than, int thanId) {
        return thanId < 0 || logit > than || (logit == than && id < thanId);
    }
}
