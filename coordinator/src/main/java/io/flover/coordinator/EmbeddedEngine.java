package io.flover.coordinator;

import io.flover.kernels.Backend;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.CausalLm;
import io.flover.worker.ShardExecutor;

/**
 * The coordinator with an in-process worker: what {@code flover serve} runs on one machine and what most tests
 * use. The KV pool is sized from a memory budget.
 */
public final class EmbeddedEngine {
    /** Positions per KV block. */
    public static final int BLOCK_SIZE = 16;

    private EmbeddedEngine() {
    }

    /** Blocks that fit {@code kvMemoryBytes} for this model. */
    public static int blocksFor(ModelConfig c, long kvMemoryBytes) {
        return blocksFor(Backend.KvCache.bytesPerBlock(c.numLayers(), BLOCK_SIZE, c.numKvHeads(), c.headDim()), kvMemoryBytes);
    }

    /** Blocks of {@code perBlock} bytes that fit {@code kvMemoryBytes}. */
    public static int blocksFor(long perBlock, long kvMemoryBytes) {
        long blocks = kvMemoryBytes / perBlock;
        if (blocks < 1) {
            throw new IllegalArgumentException("a KV memory of " + kvMemoryBytes + " bytes holds no block of "
                    + perBlock + " bytes for this model");
        }
        return (int) Math.min(blocks, Integer.MAX_VALUE);
    }

    /** Starts a scheduler over an in-process shard of {@code lm} with {@code numBlocks} KV blocks. */
    public static Scheduler start(CausalLm lm, Tokenizer tokenizer, int numBlocks, SchedulerConfig config) {
        ShardExecutor shard = new ShardExecutor(lm, numBlocks, BLOCK_SIZE, config.maxBatch());
        return new Scheduler(shard, lm.config(), tokenizer, new BlockPool(numBlocks, BLOCK_SIZE), config);
    }
}
