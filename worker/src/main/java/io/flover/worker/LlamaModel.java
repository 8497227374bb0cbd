package io.flover.worker;

import io.flover.kernels.cpu.CpuKernels;
import io.flover.kernels.cpu.KvCache;
import io.flover.kernels.cpu.Rope;
import io.flover.model.Checkpoint;
import io.flover.model.ModelConfig;
import io.flover.model.Tensor;

/**
 * The Llama forward (also Mistral without sliding window, and Qwen2 with its QKV biases): pre-norm RMSNorm
 * blocks with rotary grouped-query attention and a SwiGLU MLP.
 */
final class LlamaModel implements CausalLm {
    private record Layer(float[] attnNorm, Tensor q, Tensor k, Tensor v, Tensor o,
                         float[] qBias, float[] kBias, float[] vBias,
                         float[] mlpNorm, Tensor gate, Tensor up, Tensor down) {
    }

    private final ModelConfig c;
    private final CpuKernels k;
    private final Rope rope;
    private final Tensor embed;
    private final Layer[] layers;
    private final float[] finalNorm;
    private final Tensor lmHead;

    LlamaModel(ModelConfig c, Checkpoint ck, CpuKernels kernels) {
        this.c = c;
        this.k = kernels;
        long d = c.hiddenSize();
        long qDim = (long) c.numHeads() * c.headDim();
        long kvDim = (long) c.numKvHeads() * c.headDim();
        long f = c.intermediateSize();
        long v = c.vocabSize();
        ModelConfig.RopeScaling s = c.ropeScaling();
        this.rope = new Rope(c.headDim(), c.ropeTheta(), s == null ? null
                : new Rope.Llama3Scaling(s.factor(), s.lowFreqFactor(), s.highFreqFactor(), s.originalMaxPositions()));
        this.embed = ck.tensor("model.embed_tokens.weight", v, d);
        this.layers = new Layer[c.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new Layer(
                    ck.tensor(p + "input_layernorm.weight", d).toFloatArray(),
                    ck.tensor(p + "self_attn.q_proj.weight", qDim, d),
                    ck.tensor(p + "self_attn.k_proj.weight", kvDim, d),
                    ck.tensor(p + "self_attn.v_proj.weight", kvDim, d),
                    ck.tensor(p + "self_attn.o_proj.weight", d, qDim),
                    optionalVector(ck, p + "self_attn.q_proj.bias", qDim),
                    optionalVector(ck, p + "self_attn.k_proj.bias", kvDim),
                    optionalVector(ck, p + "self_attn.v_proj.bias", kvDim),
                    ck.tensor(p + "post_attention_layernorm.weight", d).toFloatArray(),
                    ck.tensor(p + "mlp.gate_proj.weight", f, d),
                    ck.tensor(p + "mlp.up_proj.weight", f, d),
                    ck.tensor(p + "mlp.down_proj.weight", d, f));
        }
        this.finalNorm = ck.tensor("model.norm.weight", d).toFloatArray();
        this.lmHead = c.tieWordEmbeddings() && !ck.contains("lm_head.weight") ? embed : ck.tensor("lm_head.weight", v, d);
    }

    @Override
    public ModelConfig config() {
        return c;
    }

    @Override
    public float[] forward(StepBatch batch, KvCache kv) {
        int t = batch.numTokens();
        int d = c.hiddenSize();
        int heads = c.numHeads();
        int kvHeads = c.numKvHeads();
        int qDim = heads * c.headDim();
        int kvDim = kvHeads * c.headDim();
        int f = c.intermediateSize();
        int[] positions = batch.positions();
        int[][] tables = batch.tokenBlockTables();

        float[] x = new float[t * d];
        float[] h = new float[t * d];
        float[] q = new float[t * qDim];
        float[] kk = new float[t * kvDim];
        float[] vv = new float[t * kvDim];
        float[] attn = new float[t * qDim];
        float[] gate = new float[t * f];
        float[] up = new float[t * f];

        k.embedding(embed, batch.tokens(), t, x);
        for (int li = 0; li < layers.length; li++) {
            Layer l = layers[li];
            k.rmsNorm(x, h, t, l.attnNorm, c.normEps());
            k.matmul(h, t, l.q, q);
            k.matmul(h, t, l.k, kk);
            k.matmul(h, t, l.v, vv);
            if (l.qBias != null) {
                k.addBias(q, t, l.qBias);
                k.addBias(kk, t, l.kBias);
                k.addBias(vv, t, l.vBias);
            }
            rope.apply(q, 0, t, positions, heads);
            rope.apply(kk, 0, t, positions, kvHeads);
            for (int i = 0; i < t; i++) {
                kv.write(li, tables[i], positions[i], kk, i * kvDim, vv, i * kvDim);
            }
            k.attention(q, attn, t, positions, tables, kv, li, heads);
            k.matmul(attn, t, l.o, h);
            k.add(x, h, t * d);

            k.rmsNorm(x, h, t, l.mlpNorm, c.normEps());
            k.matmul(h, t, l.gate, gate);
            k.matmul(h, t, l.up, up);
            k.swiglu(gate, up, t * f);
            k.matmul(gate, t, l.down, h);
            k.add(x, h, t * d);
        }
        int rows = LogitRows.gather(batch, x, d, h);
        k.rmsNorm(h, h, rows, finalNorm, c.normEps());
        float[] logits = new float[rows * c.vocabSize()];
        k.matmul(h, rows, lmHead, logits);
        return logits;
    }

    private static float[] optionalVector(Checkpoint ck, String name, long n) {
        return ck.contains(name) ? ck.tensor(name, n).toFloatArray() : null;
    }
}
