package io.flover.worker;

import io.flover.kernels.Backend;
import io.flover.model.ModelConfig;

/**
 * A causal language model, or one tensor-parallel rank's shard of it, that runs fused steps over a paged KV cache:
 * one implementation per architecture, on any {@link Backend}. The ranks of a group run every step together and
 * all return the same logits.
 */
public interface CausalLm {
    ModelConfig config();

    /** The part of the model this instance holds: all of it, or one tensor-parallel rank's shard. */
    ShardLayout shard();

    /** A KV cache of {@code numBlocks} blocks of {@code blockSize} positions for this shard's KV heads. */
    Backend.KvCache newKvCache(int numBlocks, int blockSize);

    /**
     * Runs one step: stores the K/V of every token in {@code kv} and returns the logits of the last token of each
     * sequence that wants them, row after row ({@code numLogitRows() * vocabSize} floats, perhaps followed by
     * unused ones).
     */
    float[] forward(StepBatch batch, Backend.KvCache kv);
}
