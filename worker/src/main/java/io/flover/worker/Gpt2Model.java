package io.flover.worker;

import io.flover.kernels.cpu.CpuKernels;
import io.flover.kernels.cpu.KvCache;
import io.flover.model.Checkpoint;
import io.flover.model.ModelConfig;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The GPT-2 forward: learned positions, pre-norm LayerNorm blocks with biases, multi-head attention from a
 * fused {@code c_attn}, a {@code gelu_new} MLP and an LM head tied to the token embedding.
 */
final class Gpt2Model implements CausalLm {
    private record Layer(float[] ln1Weight, float[] ln1Bias, Tensor qkv, float[] qkvBias, Tensor proj, float[] projBias,
                         float[] ln2Weight, float[] ln2Bias, Tensor fc, float[] fcBias, Tensor fcProj, float[] fcProjBias) {
    }

    private final ModelConfig c;
    private final CpuKernels k;
    private final Tensor wte;
    private final Tensor wpe;
    private final Layer[] layers;
    private final float[] lnfWeight;
    private final float[] lnfBias;

    /** {@code weights} holds the transposed copies of the {@code Conv1D} matrices for as long as the model lives. */
    Gpt2Model(ModelConfig c, Checkpoint ck, CpuKernels kernels, Arena weights) {
        this.c = c;
        this.k = kernels;
        long d = c.hiddenSize();
        long f = c.intermediateSize();
        String p0 = ck.contains("transformer.wte.weight") ? "transformer." : "";
        this.wte = ck.tensor(p0 + "wte.weight", c.vocabSize(), d);
        this.wpe = ck.tensor(p0 + "wpe.weight", c.maxPositions(), d);
        this.layers = new Layer[c.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = p0 + "h." + i + ".";
            layers[i] = new Layer(
                    ck.tensor(p + "ln_1.weight", d).toFloatArray(),
                    ck.tensor(p + "ln_1.bias", d).toFloatArray(),
                    transposed(ck.tensor(p + "attn.c_attn.weight", d, 3 * d), weights),
                    ck.tensor(p + "attn.c_attn.bias", 3 * d).toFloatArray(),
                    transposed(ck.tensor(p + "attn.c_proj.weight", d, d), weights),
                    ck.tensor(p + "attn.c_proj.bias", d).toFloatArray(),
                    ck.tensor(p + "ln_2.weight", d).toFloatArray(),
                    ck.tensor(p + "ln_2.bias", d).toFloatArray(),
                    transposed(ck.tensor(p + "mlp.c_fc.weight", d, f), weights),
                    ck.tensor(p + "mlp.c_fc.bias", f).toFloatArray(),
                    transposed(ck.tensor(p + "mlp.c_proj.weight", f, d), weights),
                    ck.tensor(p + "mlp.c_proj.bias", d).toFloatArray());
        }
        this.lnfWeight = ck.tensor(p0 + "ln_f.weight", d).toFloatArray();
        this.lnfBias = ck.tensor(p0 + "ln_f.bias", d).toFloatArray();
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
        int f = c.intermediateSize();
        int[] positions = batch.positions();
        int[][] tables = batch.tokenBlockTables();

        float[] x = new float[t * d];
        float[] h = new float[t * d];
        float[] qkv = new float[t * 3 * d];
        float[] q = new float[t * d];
        float[] attn = new float[t * d];
        float[] mlp = new float[t * f];

        k.embedding(wte, batch.tokens(), t, x);
        k.embedding(wpe, positions, t, h);
        k.add(x, h, t * d);
        for (int li = 0; li < layers.length; li++) {
            Layer l = layers[li];
            k.layerNorm(x, h, t, l.ln1Weight, l.ln1Bias, c.normEps());
            k.matmul(h, t, l.qkv, qkv);
            k.addBias(qkv, t, l.qkvBias);
            for (int i = 0; i < t; i++) {
                System.arraycopy(qkv, i * 3 * d, q, i * d, d);
                kv.write(li, tables[i], positions[i], qkv, i * 3 * d + d, qkv, i * 3 * d + 2 * d);
            }
            k.attention(q, attn, t, positions, tables, kv, li, heads);
            k.matmul(attn, t, l.proj, h);
            k.addBias(h, t, l.projBias);
            k.add(x, h, t * d);

            k.layerNorm(x, h, t, l.ln2Weight, l.ln2Bias, c.normEps());
            k.matmul(h, t, l.fc, mlp);
            k.addBias(mlp, t, l.fcBias);
            k.geluNew(mlp, t * f);
            k.matmul(mlp, t, l.fcProj, h);
            k.addBias(h, t, l.fcProjBias);
            k.add(x, h, t * d);
        }
        int rows = LogitRows.gather(batch, x, d, h);
        k.layerNorm(h, h, rows, lnfWeight, lnfBias, c.normEps());
        float[] logits = new float[rows * c.vocabSize()];
        k.matmul(h, rows, wte, logits);
        return logits;
    }

    /**
     * GPT-2 stores its projections as {@code Conv1D} weights {@code [in, out]}; the kernels read {@code [out, in]}.
     * The copy keeps the dtype and lives off-heap in {@code arena}.
     */
    static Tensor transposed(Tensor w, Arena arena) {
        int in = w.rows();
        int out = w.cols();
        int size = w.dtype().bytes();
        MemorySegment src = w.data();
        MemorySegment dst = arena.allocate(src.byteSize(), 64);
        for (int i = 0; i < in; i++) {
            for (int o = 0; o < out; o++) {
                long from = ((long) i * out + o) * size;
                long to = ((long) o * in + i) * size;
                if (size == 4) {
                    dst.set(ValueLayout.JAVA_INT_UNALIGNED, to, src.get(ValueLayout.JAVA_INT_UNALIGNED, from));
                } else {
                    dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, to, src.get(ValueLayout.JAVA_SHORT_UNALIGNED, from));
                }
            }
        }
        return new Tensor(w.name(), w.dtype(), new long[] {out, in}, dst);
    }
}
