package io.flover.worker;

import static io.flover.kernels.cpu.CpuKernels.argmax;

import java.util.Arrays;
import java.util.SplittableRandom;

/** Picks the next token of a sequence from its logits. Not thread-safe: one per thread that samples. */
public final class Sampler {
    /**
     * Tokens whose scaled logit is this far below the best have a probability under e^-30 of the best's; they are
     * left out of sorting so a 128k vocabulary does not cost a full sort per token. Their total mass is below
     * vocabSize * e^-30 (about 1e-8), far under what float32 probabilities resolve.
     */
    private static final float NEGLIGIBLE_LOGIT_GAP = 30f;

    private float[] scratch = new float[0];
    private long[] order = new long[0];

    /**
     * The next token from row {@code row} of a step's logits: its argmax where {@code p} asks for no more, which
     * needs no logits on the host; otherwise as {@link #sample(float[], int, int, SamplingParams, int[], int, long)}
     * from the rows, which the step must have fetched.
     */
    public int sample(LogitRows logits, int row, int vocab, SamplingParams p, int[] history, int historyLength,
                      int outputStart, long step) {
        return p.argmaxOfLogits() ? logits.argmax()[row]
                : sample(logits.rows(), row * vocab, vocab, p, history, historyLength, outputStart, step);
    }

    /**
     * Samples from {@code logits[offset .. offset + vocab)} (not modified). {@code history} holds the tokens seen so
     * far ({@code historyLength} of them: the prompt, then from {@code outputStart} the output) for the penalties
     * and {@code min_tokens}; {@code step} numbers the token being chosen within its sequence and picks the draw.
     */
    public int sample(float[] logits, int offset, int vocab, SamplingParams p, int[] history, int historyLength,
                      int outputStart, long step) {
        if (p.argmaxOfLogits()) {
            return argmax(logits, offset, vocab);
        }
        if (scratch.length < vocab) {
            scratch = new float[vocab];
            order = new long[vocab];
        }
        float[] l = scratch;
        System.arraycopy(logits, offset, l, 0, vocab);
        if (p.repetitionPenalty() != 1f) {
            applyRepetitionPenalty(l, vocab, history, historyLength, p.repetitionPenalty());
        }
        if (p.presencePenalty() != 0f || p.frequencyPenalty() != 0f) {
            applyOutputPenalties(l, vocab, history, outputStart, historyLength, p);
        }
        if (historyLength - outputStart < p.minTokens()) {
            for (int id : p.bannedEarly()) {
                if (id >= 0 && id < vocab) {
                    l[id] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        if (p.greedy()) {
            return argmax(l, 0, vocab);
        }
        float invT = 1f / p.temperature();
        if (Float.isInfinite(invT)) {
            return argmax(l, 0, vocab); // a temperature too small to divide by is greedy
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            // A NaN logit (a broken checkpoint) must not poison the whole distribution: it is never chosen.
            l[i] = Float.isNaN(l[i]) ? Float.NEGATIVE_INFINITY : l[i] * invT;
            max = Math.max(max, l[i]);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            return argmax(l, 0, vocab);
        }
        // Candidates sorted by logit, best first: the float bits of a logit ordered as an int, index below.
        int n = 0;
        float floor = max - NEGLIGIBLE_LOGIT_GAP;
        for (int i = 0; i < vocab; i++) {
            if (l[i] >= floor) {
                order[n++] = ((long) sortableBits(l[i]) << 32) | (0xFFFFFFFFL - i);
            }
        }
        Arrays.sort(order, 0, n);
        int count = p.topK() > 0 ? Math.min(p.topK(), n) : n;
        double[] probs = new double[count];
        double sum = 0;
        for (int j = 0; j < count; j++) {
            probs[j] = Math.exp(l[tokenAt(n - 1 - j)] - max);
            sum += probs[j];
        }
        if (p.topP() < 1f) {
            double cumulative = 0;
            for (int j = 0; j < count; j++) {
                cumulative += probs[j] / sum;
                if (cumulative >= p.topP()) {
                    count = j + 1;
                    break;
                }
            }
        }
        if (p.minP() > 0f) {
            double threshold = p.minP() * probs[0];
            int keep = 1;
            while (keep < count && probs[keep] >= threshold) {
                keep++;
            }
            count = keep;
        }
        double total = 0;
        for (int j = 0; j < count; j++) {
            total += probs[j];
        }
        double u = draw(p.seed(), step) * total;
        for (int j = 0; j < count; j++) {
            u -= probs[j];
            if (u < 0) {
                return tokenAt(n - 1 - j);
            }
        }
        return tokenAt(n - count);
    }

    private int tokenAt(int sortedIndex) {
        return (int) (0xFFFFFFFFL - (order[sortedIndex] & 0xFFFFFFFFL));
    }

    private static void applyRepetitionPenalty(float[] l, int vocab, int[] history, int n, float penalty) {
        boolean[] seen = new boolean[vocab];
        for (int i = 0; i < n; i++) {
            int id = history[i];
            if (id >= 0 && id < vocab && !seen[id]) {
                seen[id] = true;
                l[id] = l[id] > 0 ? l[id] / penalty : l[id] * penalty;
            }
        }
    }

    /** OpenAI's penalties: each token of the output lowers its logit by presence once and by frequency per time. */
    private static void applyOutputPenalties(float[] l, int vocab, int[] history, int from, int to, SamplingParams p) {
        int[] output = Arrays.copyOfRange(history, Math.min(from, to), to);
        Arrays.sort(output); // equal ids side by side: one pass counts them, in a fixed order whatever the batch
        for (int i = 0; i < output.length; ) {
            int id = output[i];
            int count = 0;
            while (i < output.length && output[i] == id) {
                count++;
                i++;
            }
            if (id >= 0 && id < vocab) {
                l[id] -= p.presencePenalty() + p.frequencyPenalty() * count;
            }
        }
    }

    /** Maps a float to an int that orders like the float (for finite values and infinities). */
    private static int sortableBits(float f) {
        int b = Float.floatToIntBits(f);
        return b >= 0 ? b : b ^ 0x7FFFFFFF;
    }

    /** A uniform draw in [0, 1) that depends only on the request's seed and the token's step. */
    static double draw(long seed, long step) {
        return new SplittableRandom(seed ^ (step * 0x9E3779B97F4A7C15L)).nextDouble();
    }
}
