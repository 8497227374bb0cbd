package io.flover.worker;

import io.flover.kernels.cpu.KvCache;
import io.flover.model.ModelConfig;

/** A causal language model that runs fused steps over a paged KV cache: one implementation per architecture. */
public interface CausalLm {
    ModelConfig config();

    /** A KV cache of {@code numBlocks} blocks of {@code blockSize} positions shaped for this model. */
    default KvCache newKvCache(int numBlocks, int blockSize) {
        ModelConfig c = config();
        return new KvCache(c.numLayers(), numBlocks, blockSize, c.numKvHeads(), c.headDim());
    }

    /**
     * Runs one step: stores the K/V of every token in {@code kv} and returns the logits of the last token of each
     * sequence that wants them, row after row ({@code numLogitRows() * vocabSize} floats).
     */
    float[] forward(StepBatch batch, KvCache kv);
}
