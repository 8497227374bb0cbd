package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.kernels.cpu.KvCache;
import io.flover.kernels.cpu.Rope;
import io.flover.model.Checkpoint;
import io.flover.model.ModelConfig;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;

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
    private final ShardLayout shard;
    private final CpuKernels k;
    private final Communicator comm;
    private final VocabParallel vocab;
    private final Rope rope;
    private final Tensor embed;
    private final Layer[] layers;
    private final float[] finalNorm;
    private final Tensor lmHead;

    /**
     * Reads rank {@code comm.rank()}'s shard of the weights: Q/K/V and gate/up by output rows (zero-copy slices
     * of the memory map), O and down by input columns (copied into {@code weights}), embedding and head by vocabulary.
     */
    LlamaModel(ModelConfig c, Checkpoint ck, CpuKernels kernels, Communicator comm, Arena weights) {
        this.c = c;
        this.shard = ShardLayout.of(c, comm.rank(), comm.size());
        this.k = kernels;
        this.comm = comm;
        this.vocab = new VocabParallel(kernels, comm, shard, c.vocabSize());
        long d = c.hiddenSize();
        int hd = c.headDim();
        long qDim = (long) c.numHeads() * hd;
        long kvDim = (long) c.numKvHeads() * hd;
        long f = c.intermediateSize();
        long v = c.vocabSize();
        long qFrom = (long) shard.firstHead() * hd;
        long qCount = (long) shard.heads() * hd;
        long kvFrom = (long) shard.firstKvHead() * hd;
        long kvCount = (long) shard.kvHeads() * hd;
        ModelConfig.RopeScaling s = c.ropeScaling();
        this.rope = new Rope(hd, c.ropeTheta(), s == null ? null
                : new Rope.Llama3Scaling(s.factor(), s.lowFreqFactor(), s.highFreqFactor(), s.originalMaxPositions()));
        Tensor fullEmbed = ck.tensor("model.embed_tokens.weight", v, d);
        this.embed = vocab.slice(fullEmbed);
        this.layers = new Layer[c.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new Layer(
                    ck.tensor(p + "input_layernorm.weight", d).toFloatArray(),
                    ck.tensor(p + "self_attn.q_proj.weight", qDim, d).rowRange(qFrom, qCount),
                    ck.tensor(p + "self_attn.k_proj.weight", kvDim, d).rowRange(kvFrom, kvCount),
                    ck.tensor(p + "self_attn.v_proj.weight", kvDim, d).rowRange(kvFrom, kvCount),
                    columns(ck.tensor(p + "self_attn.o_proj.weight", d, qDim), qFrom, qCount, weights),
                    optionalSlice(ck, p + "self_attn.q_proj.bias", qDim, qFrom, qCount),
                    optionalSlice(ck, p + "self_attn.k_proj.bias", kvDim, kvFrom, kvCount),
                    optionalSlice(ck, p + "self_attn.v_proj.bias", kvDim, kvFrom, kvCount),
                    ck.tensor(p + "post_attention_layernorm.weight", d).toFloatArray(),
                    ck.tensor(p + "mlp.gate_proj.weight", f, d).rowRange(shard.firstFfn(), shard.ffn()),
                    ck.tensor(p + "mlp.up_proj.weight", f, d).rowRange(shard.firstFfn(), shard.ffn()),
                    columns(ck.tensor(p + "mlp.down_proj.weight", d, f), shard.firstFfn(), shard.ffn(), weights));
        }
        this.finalNorm = ck.tensor("model.norm.weight", d).toFloatArray();
        this.lmHead = c.tieWordEmbeddings() && !ck.contains("lm_head.weight")
                ? embed : vocab.slice(ck.tensor("lm_head.weight", v, d));
    }

    @Override
    public ShardLayout shard() {
        return shard;
    }

    @Override
    public ModelConfig config() {
        return c;
    }

    @Override
    public float[] forward(StepBatch batch, KvCache kv) {
        int t = batch.numTokens();
        int d = c.hiddenSize();
        int heads = shard.heads();
        int qDim = heads * c.headDim();
        int kvDim = shard.kvHeads() * c.headDim();
        int f = shard.ffn();
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

        vocab.embed(embed, batch.tokens(), t, x);
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
            rope.apply(kk, 0, t, positions, shard.kvHeads());
            for (int i = 0; i < t; i++) {
                kv.write(li, tables[i], positions[i], kk, i * kvDim, vv, i * kvDim);
            }
            k.attention(q, attn, t, positions, tables, kv, li, heads);
            k.matmul(attn, t, l.o, h);
            comm.allReduceSum(h, 0, t * d);
            k.add(x, h, t * d);

            k.rmsNorm(x, h, t, l.mlpNorm, c.normEps());
            k.matmul(h, t, l.gate, gate);
            k.matmul(h, t, l.up, up);
            k.swiglu(gate, up, t * f);
            k.matmul(gate, t, l.down, h);
            comm.allReduceSum(h, 0, t * d);
            k.add(x, h, t * d);
        }
        int rows = LogitRows.gather(batch, x, d, h);
        k.rmsNorm(h, h, rows, finalNorm, c.normEps());
        return vocab.logits(h, rows, lmHead);
    }

    /** Input columns of a row-parallel weight; the whole tensor, uncopied, when one rank holds it all. */
    static Tensor columns(Tensor w, long from, long count, Arena arena) {
        return count == w.cols() ? w : w.columnRange(from, count, arena);
    }

    private static float[] optionalSlice(Checkpoint ck, String name, long n, long from, long count) {
        return ck.contains(name) ? ck.tensor(name, n).toFloatArray(from, count) : null;
    }
}
