package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;
import io.flover.kernels.Backend.Buffer;
import io.flover.kernels.Backend.Matrix;
import io.flover.kernels.Backend.Vector;
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
final class Gpt2Model extends CausalLm {
    private record Layer(Vector ln1Weight, Vector ln1Bias, Matrix q, Matrix k, Matrix v,
                         Vector qBias, Vector kBias, Vector vBias, Matrix proj, Vector projBias,
                         Vector ln2Weight, Vector ln2Bias, Matrix fc, Vector fcBias, Matrix fcProj, Vector fcProjBias) {
    }

    private final Matrix wte;
    private final Matrix wpe;
    private final Layer[] layers;
    private final Vector lnfWeight;
    private final Vector lnfBias;

    /**
     * Reads rank {@code comm.rank()}'s shard: the heads' outputs of the fused {@code c_attn}, the MLP's slice of
     * {@code c_fc}, the matching inputs of both {@code c_proj}, and a vocabulary slice of the tied embedding.
     * {@code weights} holds the copies the shards need for as long as the model lives.
     */
    Gpt2Model(ModelConfig c, Checkpoint ck, Backend backend, Communicator comm, Arena weights) {
        super(c, backend, comm);
        long d = c.hiddenSize();
        long f = c.intermediateSize();
        long from = (long) shard.firstHead() * c.headDim();
        long width = (long) shard.heads() * c.headDim();
        String p0 = ck.contains("transformer.wte.weight") ? "transformer." : "";
        this.wte = k.matrix(vocab.slice(ck.tensor(p0 + "wte.weight", c.vocabSize(), d)));
        this.wpe = k.table(ck.tensor(p0 + "wpe.weight", c.maxPositions(), d));
        this.layers = new Layer[c.numLayers()];
        Projections w = new Projections(ck, weights);
        for (int i = 0; i < layers.length; i++) {
            String p = p0 + "h." + i + ".";
            String qkv = p + "attn.c_attn.weight";
            Tensor qkvBias = ck.tensor(p + "attn.c_attn.bias", 3 * d);
            layers[i] = new Layer(
                    k.vector(ck.tensor(p + "ln_1.weight", d).toFloatArray()),
                    k.vector(ck.tensor(p + "ln_1.bias", d).toFloatArray()),
                    k.matrix(w.outputs(qkv, d, 3 * d, from, width)),
                    k.matrix(w.outputs(qkv, d, 3 * d, d + from, width)),
                    k.matrix(w.outputs(qkv, d, 3 * d, 2 * d + from, width)),
                    k.vector(qkvBias.toFloatArray(from, width)),
                    k.vector(qkvBias.toFloatArray(d + from, width)),
                    k.vector(qkvBias.toFloatArray(2 * d + from, width)),
                    k.matrix(w.inputs(p + "attn.c_proj.weight", d, d, from, width)),
                    k.vector(ck.tensor(p + "attn.c_proj.bias", d).toFloatArray()),
                    k.vector(ck.tensor(p + "ln_2.weight", d).toFloatArray()),
                    k.vector(ck.tensor(p + "ln_2.bias", d).toFloatArray()),
                    k.matrix(w.outputs(p + "mlp.c_fc.weight", d, f, shard.firstFfn(), shard.ffn())),
                    k.vector(ck.tensor(p + "mlp.c_fc.bias", f).toFloatArray(shard.firstFfn(), shard.ffn())),
                    k.matrix(w.inputs(p + "mlp.c_proj.weight", f, d, shard.firstFfn(), shard.ffn())),
                    k.vector(ck.tensor(p + "mlp.c_proj.bias", d).toFloatArray()));
        }
        this.lnfWeight = k.vector(ck.tensor(p0 + "ln_f.weight", d).toFloatArray());
        this.lnfBias = k.vector(ck.tensor(p0 + "ln_f.bias", d).toFloatArray());
    }

    @Override
    LogitRows forwardOnDevice(StepBatch batch, Backend.KvCache kv, boolean withRows, int topLogprobs) {
        int t = batch.numTokens();
        int d = c.hiddenSize();
        int heads = shard.heads();
        int width = heads * c.headDim();
        int f = shard.ffn();
        try (Backend.Forward step = k.forward(batch.index(), kv)) {
            Buffer x = step.buffer(t * d);
            Buffer h = step.buffer(t * d);
            Buffer q = step.buffer(t * width);
            Buffer kk = step.buffer(t * width);
            Buffer vv = step.buffer(t * width);
            Buffer attn = step.buffer(t * width);
            Buffer mlp = step.buffer(t * f);

            vocab.embed(step, wte, x);
            k.positionEmbedding(step, wpe, h);
            k.add(x, h, t * d);
            for (int li = 0; li < layers.length; li++) {
                Layer l = layers[li];
                k.layerNorm(x, h, t, l.ln1Weight, l.ln1Bias, c.normEps());
                k.matmul(h, t, new Matrix[] {l.q, l.k, l.v}, new Buffer[] {q, kk, vv});
                k.addBias(q, t, l.qBias);
                k.addBias(kk, t, l.kBias);
                k.addBias(vv, t, l.vBias);
                k.writeKv(step, li, kk, vv);
                k.attention(step, q, attn, li, heads);
                k.matmul(attn, t, l.proj, h);
                group.allReduceSum(h, t * d);
                k.addBias(h, t, l.projBias);
                k.add(x, h, t * d);

                k.layerNorm(x, h, t, l.ln2Weight, l.ln2Bias, c.normEps());
                k.matmul(h, t, l.fc, mlp);
                k.addBias(mlp, t, l.fcBias);
                k.geluNew(mlp, t * f);
                k.matmul(mlp, t, l.fcProj, h);
                group.allReduceSum(h, t * d);
                k.addBias(h, t, l.fcProjBias);
                k.add(x, h, t * d);
            }
            int rows = batch.numLogitRows();
            k.gatherLogitRows(step, x, d, h);
            k.layerNorm(h, h, rows, lnfWeight, lnfBias, c.normEps());
            return vocab.logits(step, h, batch.numSampleRows(), batch.scoreTargets(), wte, withRows, topLogprobs);
        }
    }

    /**
     * GPT-2's projections as the kernels read them, {@code [out, in]}. Hugging Face stores them as {@code Conv1D}
     * weights {@code [in, out]}, copied here transposed (in the same dtype); GGUF files already hold them
     * {@code [out, in]} ({@link Checkpoint#conv1dAsLinear}), so their blocks are kept as they are.
     */
    private record Projections(Checkpoint ck, Arena arena) {
        /** Outputs {@code [from, from + count)} of the projection {@code name} from {@code in} to {@code out}. */
        Tensor outputs(String name, long in, long out, long from, long count) {
            if (ck.conv1dAsLinear()) {
                return ck.tensor(name, out, in).rowRange(from, count);
            }
            return transposed(ck.tensor(name, in, out), from, count, arena);
        }

        /** Inputs {@code [from, from + count)} of the projection {@code name}: whole blocks of a quantized one. */
        Tensor inputs(String name, long in, long out, long from, long count) {
            if (ck.conv1dAsLinear()) {
                return ck.tensor(name, out, in).columnRange(from, count, arena);
            }
            return transposed(ck.tensor(name, in, out).rowRange(from, count), 0, out, arena);
        }
    }

    /** Copies output columns {@code [from, from + count)} of a {@code Conv1D} weight transposed, off-heap into {@code arena}. */
    private static Tensor transposed(Tensor w, long from, long count, Arena arena) {
        int in = w.rows();
        int out = w.cols();
        int size = w.dtype().bytes();
        MemorySegment src = w.data();
        MemorySegment dst = arena.allocate(count * in * size, 64);
        for (int i = 0; i < in; i++) {
            for (long o = 0; o < count; o++) {
                long at = ((long) i * out + from + o) * size;
                long to = (o * in + i) * size;
                if (size == 4) {
                    dst.set(ValueLayout.JAVA_INT_UNALIGNED, to, src.get(ValueLayout.JAVA_INT_UNALIGNED, at));
                } else {
                    dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, to, src.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
                }
            }
        }
        return new Tensor(w.name(), w.dtype(), new long[] {count, in}, dst);
    }
}
