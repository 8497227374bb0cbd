package io.flover.coordinator;

import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.CausalLm;
import io.flover.worker.ShardExecutor;

/**
 * The coordinator with an in-process worker: what {@code flover serve} runs on one machine and what most tests
 * use.
 */
public final class EmbeddedEngine {
    private EmbeddedEngine() {
    }

    /** Starts a scheduler over an in-process shard of {@code lm} with {@code numBlocks} KV blocks. */
    public static Scheduler start(CausalLm lm, Tokenizer tokenizer, int numBlocks, SchedulerConfig config) {
        ShardExecutor shard = new ShardExecutor(lm, numBlocks, config.blockSize(), config.maxBatch());
        return new Scheduler(shard, lm.config(), tokenizer, numBlocks, config);
    }
}
