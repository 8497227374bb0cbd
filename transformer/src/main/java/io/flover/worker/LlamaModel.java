package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;
import io.flover.kernels.Backend.Buffer;
import io.flover.kernels.Backend.Matrix;
import io.flover.kernels.Backend.Vector;
import io.flover.kernels.cpu.Rope;
import io.flover.model.Checkpoint;
import io.flover.model.ModelConfig;
import io.flover.model.Tensor;
import java.lang.foreign.Arena;

/**
 * The Llama forward (also Mistral without sliding window, and Qwen2 with its QKV biases): pre-norm RMSNorm
 * blocks with rotary grouped-query attention and a SwiGLU MLP.
 */
final class LlamaModel extends CausalLm {
    private record Layer(Vector attnNorm, Matrix q, Matrix k, Matrix v, Matrix o,
                         Vector qBias, Vector kBias, Vector vBias,
                         Vector mlpNorm, Matrix gate, Matrix up, Matrix down) {
    }

    /** llama.cpp's per-frequency RoPE divisors, which its converter writes for Llama 3's rope_scaling. */
    static final String ROPE_FACTORS = "rope_freqs.weight";

    private final Vector ropeFrequencies;
    private final Matrix embed;
    private final Layer[] layers;
    private final Vector finalNorm;
    private final Matrix lmHead;

    /**
     * Reads rank {@code comm.rank()}'s shard of the weights: Q/K/V and gate/up by output rows (zero-copy slices
     * of the memory map), O and down by input columns (copied into {@code weights}), embedding and head by vocabulary,
     * and hands them to {@code backend}.
     */
    LlamaModel(ModelConfig c, Checkpoint ck, Backend backend, Communicator comm, Arena weights) {
        super(c, backend, comm);
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
        float[] frequencies = new Rope(hd, c.ropeTheta(), s == null ? null
                : new Rope.Llama3Scaling(s.factor(), s.lowFreqFactor(), s.highFreqFactor(), s.originalMaxPositions()))
                .inverseFrequencies();
        if (ck.contains(ROPE_FACTORS)) { // GGUF's form of Llama 3's rope_scaling: a divisor per frequency
            float[] factors = ck.tensor(ROPE_FACTORS, hd / 2).toFloatArray();
            for (int i = 0; i < frequencies.length; i++) {
                frequencies[i] /= factors[i];
            }
        }
        this.ropeFrequencies = k.vector(frequencies);
        boolean tied = c.tieWordEmbeddings() && !ck.contains("lm_head.weight");
        Tensor embedTokens = vocab.slice(ck.tensor("model.embed_tokens.weight", v, d));
        this.embed = tied ? k.matrix(embedTokens) : k.table(embedTokens);
        this.layers = new Layer[c.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new Layer(
                    k.vector(ck.tensor(p + "input_layernorm.weight", d).toFloatArray()),
                    k.matrix(ck.tensor(p + "self_attn.q_proj.weight", qDim, d).rowRange(qFrom, qCount)),
                    k.matrix(ck.tensor(p + "self_attn.k_proj.weight", kvDim, d).rowRange(kvFrom, kvCount)),
                    k.matrix(ck.tensor(p + "self_attn.v_proj.weight", kvDim, d).rowRange(kvFrom, kvCount)),
                    k.matrix(columns(ck.tensor(p + "self_attn.o_proj.weight", d, qDim), qFrom, qCount, weights)),
                    optionalSlice(ck, p + "self_attn.q_proj.bias", qDim, qFrom, qCount),
                    optionalSlice(ck, p + "self_attn.k_proj.bias", kvDim, kvFrom, kvCount),
                    optionalSlice(ck, p + "self_attn.v_proj.bias", kvDim, kvFrom, kvCount),
                    k.vector(ck.tensor(p + "post_attention_layernorm.weight", d).toFloatArray()),
                    k.matrix(ck.tensor(p + "mlp.gate_proj.weight", f, d).rowRange(shard.firstFfn(), shard.ffn())),
                    k.matrix(ck.tensor(p + "mlp.up_proj.weight", f, d).rowRange(shard.firstFfn(), shard.ffn())),
                    k.matrix(columns(ck.tensor(p + "mlp.down_proj.weight", d, f), shard.firstFfn(), shard.ffn(),
                            weights)));
        }
        this.finalNorm = k.vector(ck.tensor("model.norm.weight", d).toFloatArray());
        this.lmHead = tied ? embed : k.matrix(vocab.slice(ck.tensor("lm_head.weight", v, d)));
    }

    @Override
    LogitRows forwardOnDevice(StepBatch batch, Backend.KvCache kv, boolean withRows, int topLogprobs) {
        int t = batch.numTokens();
        int d = c.hiddenSize();
        int heads = shard.heads();
        int qDim = heads * c.headDim();
        int kvDim = shard.kvHeads() * c.headDim();
        int f = shard.ffn();
        try (Backend.Forward step = k.forward(batch.index(), kv)) {
            Buffer x = step.buffer(t * d);
            Buffer h = step.buffer(t * d);
            Buffer q = step.buffer(t * qDim);
            Buffer kk = step.buffer(t * kvDim);
            Buffer vv = step.buffer(t * kvDim);
            Buffer attn = step.buffer(t * qDim);
            Buffer gate = step.buffer(t * f);
            Buffer up = step.buffer(t * f);

            vocab.embed(step, embed, x);
            for (int li = 0; li < layers.length; li++) {
                Layer l = layers[li];
                k.rmsNorm(x, h, t, l.attnNorm, c.normEps());
                k.matmul(h, t, new Matrix[] {l.q, l.k, l.v}, new Buffer[] {q, kk, vv});
                if (l.qBias != null) {
                    k.addBias(q, t, l.qBias);
                    k.addBias(kk, t, l.kBias);
                    k.addBias(vv, t, l.vBias);
                }
                k.rope(step, q, heads, ropeFrequencies);
                k.rope(step, kk, shard.kvHeads(), ropeFrequencies);
                k.writeKv(step, li, kk, vv);
                k.attention(step, q, attn, li, heads);
                k.matmul(attn, t, l.o, h);
                group.allReduceSum(h, t * d);
                k.add(x, h, t * d);

                k.rmsNorm(x, h, t, l.mlpNorm, c.normEps());
                k.matmul(h, t, new Matrix[] {l.gate, l.up}, new Buffer[] {gate, up});
                k.swiglu(gate, up, t * f);
                k.matmul(gate, t, l.down, h);
                group.allReduceSum(h, t * d);
                k.add(x, h, t * d);
            }
            int rows = batch.numLogitRows();
            k.gatherLogitRows(step, x, d, h);
            k.rmsNorm(h, h, rows, finalNorm, c.normEps());
            return vocab.logits(step, h, batch.numSampleRows(), batch.scoreTargets(), lmHead, withRows, topLogprobs);
        }
    }

    /** Input columns of a row-parallel weight; the whole tensor, uncopied, when one rank holds it all. */
    static Tensor columns(Tensor w, long from, long count, Arena arena) {
        return count == w.cols() ? w : w.columnRange(from, count, arena);
    }

    private Vector optionalSlice(Checkpoint ck, String name, long n, long from, long count) {
        return ck.contains(name) ? k.vector(ck.tensor(name, n).toFloatArray(from, count)) : null;
    }
}
