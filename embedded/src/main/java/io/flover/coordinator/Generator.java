package io.flover.coordinator;

import io.flover.kernels.Backend;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.CausalLm;
import io.flover.worker.LogitRows;
import io.flover.worker.Sampler;
import io.flover.worker.StepBatch;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * Runs one request at a time to completion: a prefill step over the whole prompt, then one decode step per
 * token. It is the engine of {@code flover generate}; serving many requests goes through the scheduler.
 */
public final class Generator {
    /** Positions per block of this one request's private KV cache. */
    private static final int BLOCK_SIZE = SchedulerConfig.DEFAULT_BLOCK_SIZE;

    private final CausalLm lm;
    private final Tokenizer tokenizer;
    private final Sampler sampler = new Sampler();

    /** {@code tokenizer} may be null for models that come without one; results then carry no text. */
    public Generator(CausalLm lm, Tokenizer tokenizer) {
        this.lm = lm;
        this.tokenizer = tokenizer;
    }

    /** Generates, calling {@code onText} with each text delta as soon as it is final. */
    public GenerationResult generate(GenerationRequest req, Consumer<String> onText) {
        ModelConfig c = lm.config();
        int[] prompt = req.promptIds();
        req.validate(c);
        int maxTokens = req.maxTokens();
        int[] history = Arrays.copyOf(prompt, prompt.length + maxTokens);
        int blocks = (prompt.length + maxTokens + BLOCK_SIZE - 1) / BLOCK_SIZE;
        int[] table = new int[blocks];
        Arrays.setAll(table, i -> i);

        StopChecker stop = new StopChecker(req, c, tokenizer);
        StringBuilder text = new StringBuilder();
        try (Backend.KvCache kv = lm.newKvCache(blocks, BLOCK_SIZE)) {
            LogitRows logits = lm.forward(StepBatch.single(prompt, 0, table), kv, true);
            float[] firstLogits = logits.rows();
            boolean withRows = !req.sampling().argmaxOfLogits();
            int length = prompt.length;
            while (true) {
                int next = sampler.sample(logits, 0, c.vocabSize(), req.sampling(), history, length, prompt.length,
                        length);
                history[length++] = next;
                StopChecker.Emitted out = stop.accept(next, length - prompt.length, length);
                if (!out.text().isEmpty()) {
                    text.append(out.text());
                    onText.accept(out.text());
                }
                if (out.finishReason() != null) {
                    return new GenerationResult(Arrays.copyOfRange(history, prompt.length, length),
                            tokenizer == null ? null : text.toString(), out.finishReason(), firstLogits);
                }
                logits = lm.forward(StepBatch.single(new int[] {next}, length - 1, table), kv, withRows);
            }
        }
    }
}
