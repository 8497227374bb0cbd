package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.kernels.Backend;
import io.flover.model.ModelConfig;

/**
 * A causal language model, or one tensor-parallel rank's shard of it, that runs fused steps over a paged KV cache:
 * one subclass per architecture, on any {@link Backend}. The ranks of a group run every step together and all
 * return the same tokens and logits.
 */
public abstract sealed class CausalLm permits LlamaModel, Gpt2Model {
    // Short names: the forwards read as the math (c.hiddenSize(), k.matmul(...)).
    final ModelConfig c;
    final ShardLayout shard;
    final Backend k;
    final ShardCollectives group;
    final VocabParallel vocab;

    CausalLm(ModelConfig c, Backend backend, Communicator comm) {
        this.c = c;
        this.shard = ShardLayout.of(c, comm.rank(), comm.size());
        this.k = backend;
        this.group = new ShardCollectives(backend, comm);
        this.vocab = new VocabParallel(backend, group, shard, c.vocabSize());
    }

    public final ModelConfig config() {
        return c;
    }

    /** The part of the model this instance holds: all of it, or one tensor-parallel rank's shard. */
    public final ShardLayout shard() {
        return shard;
    }

    /** A KV cache of {@code numBlocks} blocks of {@code blockSize} positions for this shard's KV heads. */
    public final Backend.KvCache newKvCache(int numBlocks, int blockSize) {
        return k.kvCache(c.numLayers(), numBlocks, blockSize, shard.kvHeads(), c.headDim());
    }

    /**
     * Runs one step: stores the K/V of every token in {@code kv} and returns, for the last token of each sequence
     * that wants logits, its greedy token, and with {@code withRows} its logits, row after row
     * ({@code numSampleRows() * vocabSize} floats, perhaps followed by unused ones). The ranks of a group pass the
     * same {@code withRows}. The batch's scored tokens get only {@link LogitRows.Logprobs}.
     */
    public final LogitRows forward(StepBatch batch, Backend.KvCache kv, boolean withRows) {
        return forward(batch, kv, withRows, -1);
    }

    /** {@link #forward}, and with {@code topLogprobs >= 0} each row's {@link LogitRows.Logprobs} too. */
    public final LogitRows forward(StepBatch batch, Backend.KvCache kv, boolean withRows, int topLogprobs) {
        return k.onDevice(() -> forwardOnDevice(batch, kv, withRows, topLogprobs));
    }

    /** {@link #forward} on the backend's device thread. */
    abstract LogitRows forwardOnDevice(StepBatch batch, Backend.KvCache kv, boolean withRows, int topLogprobs);
}
