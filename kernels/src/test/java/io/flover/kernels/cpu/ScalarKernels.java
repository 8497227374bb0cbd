package io.flover.kernels.cpu;

import io.flover.model.Tensor;

/**
 * The original scalar kernels, kept as the reference the vectorised, multithreaded {@link CpuKernels} is tested
 * against: same semantics, straightforward loops.
 */
final class ScalarKernels {
    private ScalarKernels() {
    }

    /**
     * {@code out[t][n] = sum_k x[t][k] * w[n][k]} for every token {@code t < tokens}: {@code w} has the
     * Hugging Face {@code Linear} layout {@code [outFeatures, inFeatures]}, accumulation is float32.
     */
    static void matmul(float[] x, int tokens, Tensor w, float[] out) {
        int n = w.rows();
        int k = w.cols();
        float[] row = new float[k];
        for (int j = 0; j < n; j++) {
            w.copyTo((long) j * k, row, 0, k);
            for (int t = 0; t < tokens; t++) {
                float s = 0;
                for (int i = 0; i < k; i++) {
                    s += x[t * k + i] * row[i];
                }
                out[t * n + j] = s;
            }
        }
    }

    /** Copies row {@code ids[t]} of {@code table} into row {@code t} of {@code out}. */
    static void embedding(Tensor table, int[] ids, int tokens, float[] out) {
        int d = table.cols();
        for (int t = 0; t < tokens; t++) {
            table.copyTo((long) ids[t] * d, out, t * d, d);
        }
    }

    /** RMSNorm of each row of {@code x} (width {@code weight.length}) into {@code out}. */
    static void rmsNorm(float[] x, float[] out, int tokens, float[] weight, float eps) {
        int d = weight.length;
        for (int t = 0; t < tokens; t++) {
            int base = t * d;
            double ss = 0;
            for (int i = 0; i < d; i++) {
                ss += x[base + i] * x[base + i];
            }
            float inv = (float) (1.0 / Math.sqrt(ss / d + eps));
            for (int i = 0; i < d; i++) {
                out[base + i] = x[base + i] * inv * weight[i];
            }
        }
    }

    /** LayerNorm of each row of {@code x} (width {@code weight.length}) into {@code out}. */
    static void layerNorm(float[] x, float[] out, int tokens, float[] weight, float[] bias, float eps) {
        int d = weight.length;
        for (int t = 0; t < tokens; t++) {
            int base = t * d;
            double mean = 0;
            for (int i = 0; i < d; i++) {
                mean += x[base + i];
            }
            mean /= d;
            double var = 0;
            for (int i = 0; i < d; i++) {
                double c = x[base + i] - mean;
                var += c * c;
            }
            var /= d;
            float inv = (float) (1.0 / Math.sqrt(var + eps));
            for (int i = 0; i < d; i++) {
                out[base + i] = (float) (x[base + i] - mean) * inv * weight[i] + bias[i];
            }
        }
    }

    /** {@code gate[i] = silu(gate[i]) * up[i]} for {@code i < n}. */
    static void swiglu(float[] gate, float[] up, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[i];
            gate[i] = g / (1 + (float) Math.exp(-g)) * up[i];
        }
    }

    /** GPT-2's tanh approximation of GELU, in place on {@code x[0..n)}. */
    static void geluNew(float[] x, int n) {
        final float c = (float) Math.sqrt(2 / Math.PI);
        for (int i = 0; i < n; i++) {
            float v = x[i];
            // 0.5 v (1 + tanh u) in double and as v / (1 + e^-2u): 1 + tanh u cancels to 0 for large negative v.
            x[i] = (float) (v / (1 + Math.exp(-2 * c * (v + 0.044715 * v * v * v))));
        }
    }

    /** {@code acc[i] += x[i]} for {@code i < n}: the residual connection. */
    static void add(float[] acc, float[] x, int n) {
        for (int i = 0; i < n; i++) {
            acc[i] += x[i];
        }
    }

    /** Adds {@code bias} to every row of {@code x}. */
    static void addBias(float[] x, int tokens, float[] bias) {
        int d = bias.length;
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < d; i++) {
                x[t * d + i] += bias[i];
            }
        }
    }

    /**
     * Causal attention of a flat token batch over the paged KV cache of layer {@code layer}. Token {@code t}
     * (query row {@code q[t]}, {@code heads * headDim} wide) belongs to the sequence whose block table is
     * {@code blockTables[t]}, sits at {@code positions[t]} and attends to that sequence's positions
     * {@code 0..positions[t]}, whose K/V rows must already be in the cache. Query head {@code h} reads KV head
     * {@code h / (heads / kvHeads)} (grouped-query attention). Writes {@code out[t]}, same shape as {@code q}.
     */
    static void attention(float[] q, float[] out, int tokens, int[] positions, int[][] blockTables,
                          CpuKvCache kv, int layer, int heads) {
        int hd = kv.headDim();
        int group = heads / kv.kvHeads();
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] keys = kv.keys(layer);
        float[] values = kv.values(layer);
        for (int t = 0; t < tokens; t++) {
            int len = positions[t] + 1;
            float[] scores = new float[len];
            for (int h = 0; h < heads; h++) {
                int qBase = (t * heads + h) * hd;
                int kvHead = h / group;
                float max = Float.NEGATIVE_INFINITY;
                for (int p = 0; p < len; p++) {
                    int kBase = kv.rowOffset(blockTables[t], p) + kvHead * hd;
                    float s = 0;
                    for (int i = 0; i < hd; i++) {
                        s += q[qBase + i] * keys[kBase + i];
                    }
                    scores[p] = s * scale;
                    max = Math.max(max, scores[p]);
                }
                float sum = 0;
                for (int p = 0; p < len; p++) {
                    scores[p] = (float) Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                for (int i = 0; i < hd; i++) {
                    out[qBase + i] = 0;
                }
                for (int p = 0; p < len; p++) {
                    int vBase = kv.rowOffset(blockTables[t], p) + kvHead * hd;
                    float w = scores[p] / sum;
                    for (int i = 0; i < hd; i++) {
                        out[qBase + i] += w * values[vBase + i];
                    }
                }
            }
        }
    }
}
