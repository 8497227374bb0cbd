package io.flover.kernels.cpu;

/**
 * Rotary position embedding in the "rotate half" layout that Hugging Face Llama uses: element {@code i} of a
 * head is paired with element {@code i + headDim/2}. Frequencies are precomputed once, with the optional
 * {@code llama3} frequency scaling of Llama 3.1 and later.
 */
public final class Rope {
    private final int headDim;
    private final float[] invFreq;

    /** Plain RoPE with base {@code theta}. */
    public Rope(int headDim, double theta) {
        this(headDim, theta, null);
    }

    public Rope(int headDim, double theta, Llama3Scaling scaling) {
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("RoPE needs an even head dimension, got " + headDim);
        }
        this.headDim = headDim;
        int half = headDim / 2;
        this.invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            double f = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
            invFreq[i] = (float) (scaling == null ? f : scaling.scale(f));
        }
    }

    /** The {@code rope_scaling} block of type {@code llama3}. */
    public record Llama3Scaling(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {
        double scale(double invFreq) {
            double wavelen = 2 * Math.PI / invFreq;
            double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
            double highFreqWavelen = originalMaxPositions / highFreqFactor;
            if (wavelen < highFreqWavelen) {
                return invFreq;
            }
            if (wavelen > lowFreqWavelen) {
                return invFreq / factor;
            }
            double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
            return (1 - smooth) * invFreq / factor + smooth * invFreq;
        }
    }

    public int headDim() {
        return headDim;
    }

    /** The rotation frequencies of the element pairs of a head: {@code headDim / 2} of them. */
    public float[] inverseFrequencies() {
        return invFreq.clone();
    }

    /**
     * Rotates, in place, {@code heads} heads of every token row of {@code x} (row stride {@code heads * headDim},
     * starting at {@code offset}); token {@code t} is at position {@code positions[t]}.
     */
    public void apply(float[] x, int offset, int tokens, int[] positions, int heads) {
        rotate(invFreq, x, offset, tokens, positions, heads);
    }

    /** {@link #apply} with the frequencies given: {@code headDim} is twice their number. */
    static void rotate(float[] invFreq, float[] x, int offset, int tokens, int[] positions, int heads) {
        new Angles(invFreq, positions, tokens).rotate(x, offset, heads);
    }

    /**
     * The cosines and sines of the first {@code tokens} of {@code positions}: computed once per forward step, then
     * shared by every layer's Q and K (their trigonometry in double would otherwise be most of RoPE's time).
     */
    static final class Angles {
        private final float[] invFreq;
        private final int tokens;
        private final float[] cos;
        private final float[] sin;

        Angles(float[] invFreq, int[] positions, int tokens) {
            int half = invFreq.length;
            this.invFreq = invFreq;
            this.tokens = tokens;
            this.cos = new float[tokens * half];
            this.sin = new float[tokens * half];
            for (int t = 0; t < tokens; t++) {
                for (int i = 0; i < half; i++) {
                    // Angles in double: float loses too much for positions in the thousands.
                    double a = (double) positions[t] * invFreq[i];
                    cos[t * half + i] = (float) Math.cos(a);
                    sin[t * half + i] = (float) Math.sin(a);
                }
            }
        }

        /** Whether these are the angles of {@code frequencies} (the same array). */
        boolean of(float[] frequencies) {
            return invFreq == frequencies;
        }

        /** Rotates {@code heads} heads of each of the tokens' rows of {@code x}, from {@code offset}. */
        void rotate(float[] x, int offset, int heads) {
            int half = invFreq.length;
            int headDim = 2 * half;
            int stride = heads * headDim;
            for (int t = 0; t < tokens; t++) {
                int angle = t * half;
                for (int h = 0; h < heads; h++) {
                    int base = offset + t * stride + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float x0 = x[base + i];
                        float x1 = x[base + i + half];
                        float c = cos[angle + i];
                        float sn = sin[angle + i];
                        x[base + i] = x0 * c - x1 * sn;
                        x[base + i + half] = x1 * c + x0 * sn;
                    }
                }
            }
        }
    }
}
