package io.flover.worker;

import io.flover.kernels.Backend;
import java.util.Arrays;

/**
 * Runs the steps a coordinator sends to one shard: keeps the per-slot state (block table, sampling parameters,
 * the tokens seen so far), applies slot operations, runs the forward over the paged KV cache and samples. Steps
 * arrive one at a time from one thread.
 */
public final class ShardExecutor implements StepRunner {
    /** What a worker keeps per live sequence. */
    private static final class Slot {
        SamplingParams sampling;
        int promptLength;
        int[] blocks = new int[0];
        int blockCount;
        int[] history = new int[16];
        int historyLength;

        void appendBlocks(int[] more) {
            if (blockCount + more.length > blocks.length) {
                blocks = Arrays.copyOf(blocks, Math.max(2 * blocks.length, blockCount + more.length));
            }
            System.arraycopy(more, 0, blocks, blockCount, more.length);
            blockCount += more.length;
        }

        /** Records the tokens fed at {@code firstPosition..}: after a preemption they are fed again from 0. */
        void recordTokens(int[] tokens, int from, int count, int firstPosition) {
            int end = firstPosition + count;
            if (end > history.length) {
                history = Arrays.copyOf(history, Math.max(2 * history.length, end));
            }
            System.arraycopy(tokens, from, history, firstPosition, count);
            historyLength = end;
        }
    }

    private final CausalLm lm;
    private final Backend.KvCache kv;
    private final Sampler sampler = new Sampler();
    private final Slot[] slots;
    /** KV blocks of the live slots, for metrics read by other threads. */
    private volatile int blocksHeld;

    public ShardExecutor(CausalLm lm, int numBlocks, int blockSize, int maxSlots) {
        this.lm = lm;
        this.kv = lm.newKvCache(numBlocks, blockSize);
        this.slots = new Slot[maxSlots];
    }

    public CausalLm lm() {
        return lm;
    }

    /**
     * Applies the step's slot operations, runs it and returns the sampled ids in entry order, with the
     * log-probabilities asked for.
     */
    @Override
    public StepResult run(Step step) {
        for (SlotOp op : step.slotOps()) {
            apply(op);
        }
        if (!step.slotOps().isEmpty()) {
            int held = 0;
            for (Slot s : slots) {
                held += s == null ? 0 : s.blockCount;
            }
            blocksHeld = held;
        }
        int n = step.slots().length;
        if (n == 0) {
            return StepResult.of(new int[0]);
        }
        int[] starts = new int[n];
        int[][] tables = new int[n][];
        for (int i = 0, at = 0; i < n; i++) {
            Slot s = live(step.slots()[i]);
            starts[i] = at;
            at += step.lengths()[i];
            tables[i] = s.blocks;
            s.recordTokens(step.tokens(), starts[i], step.lengths()[i], step.firstPositions()[i]);
        }
        boolean withRows = false; // only where some sequence samples otherwise than by the argmax
        int sampledLogprobs = -1; // the most top tokens a sampled token asks for
        int topLogprobs = -1; // and a scored one
        int scored = 0;
        for (int i = 0; i < n; i++) {
            SamplingParams p = slots[step.slots()[i]].sampling;
            withRows |= step.sample()[i] && !p.argmaxOfLogits();
            sampledLogprobs = step.sample()[i] ? Math.max(sampledLogprobs, p.logprobs()) : sampledLogprobs;
            topLogprobs = step.scoresPrompt(i) ? Math.max(topLogprobs, p.promptLogprobs()) : topLogprobs;
            scored += step.promptTokensScored(i);
        }
        topLogprobs = Math.max(topLogprobs, sampledLogprobs);
        // Each scored token's target is the token after it: in the step, or past the entry's last the prompt's next.
        int[] scoredTokens = new int[scored];
        int[] targets = new int[scored];
        for (int i = 0, j = 0, next = 0; i < n; i++) {
            for (int t = 0; t < step.promptTokensScored(i); t++, j++) {
                scoredTokens[j] = starts[i] + t;
                targets[j] = t + 1 < step.lengths()[i] ? step.tokens()[starts[i] + t + 1]
                        : step.nextPromptTokens()[next++];
            }
        }
        LogitRows logits = lm.forward(new StepBatch(step.tokens(), starts, step.lengths(), step.firstPositions(),
                tables, step.sample(), scoredTokens, targets), kv, withRows, topLogprobs);
        int vocab = lm.config().vocabSize();
        int[] sampled = new int[step.numSampled()];
        TokenLogprobs[] logprobs = sampledLogprobs < 0 ? null : new TokenLogprobs[sampled.length];
        for (int i = 0, row = 0; i < n; i++) {
            if (step.sample()[i]) {
                Slot s = slots[step.slots()[i]];
                long position = step.firstPositions()[i] + step.lengths()[i];
                sampled[row] = sampler.sample(logits, row, vocab, s.sampling, s.history, s.historyLength,
                        s.promptLength, position);
                if (s.sampling.logprobs() >= 0) {
                    // The sampled token's logit is in the rows where they were fetched; otherwise it is the argmax.
                    LogitRows.Logprobs l = logits.logprobs();
                    float logit = logits.rows() != null ? logits.rows()[row * vocab + sampled[row]]
                            : l.topLogits()[row * l.n()];
                    logprobs[row] = logprobs(l, row, logit, s.sampling.logprobs());
                }
                row++;
            }
        }
        TokenLogprobs[] promptLogprobs = scored == 0 ? null : new TokenLogprobs[scored];
        for (int i = 0, j = 0; i < n; i++) {
            int top = Math.max(0, slots[step.slots()[i]].sampling.promptLogprobs());
            for (int t = 0; t < step.promptTokensScored(i); t++, j++) {
                int row = sampled.length + j; // the scored rows follow the sampled ones
                promptLogprobs[j] = logprobs(logits.logprobs(), row, logits.logprobs().targetLogits()[row], top);
            }
        }
        return new StepResult(sampled, logprobs, promptLogprobs);
    }

    /** The log-probability of a token of logit {@code logit} in row {@code row}, and the {@code top} best. */
    private static TokenLogprobs logprobs(LogitRows.Logprobs l, int row, float logit, int top) {
        int[] ids = new int[top];
        float[] values = new float[top];
        for (int k = 0; k < top; k++) {
            ids[k] = l.topIds()[row * l.n() + k];
            values[k] = l.logprob(row, l.topLogits()[row * l.n() + k]);
        }
        return new TokenLogprobs(l.logprob(row, logit), ids, values);
    }

    /** KV blocks the live slots hold. */
    public int blocksHeld() {
        return blocksHeld;
    }

    /** Forgets every slot, after a failed step left them in an unknown state. */
    @Override
    public void reset() {
        Arrays.fill(slots, null);
        blocksHeld = 0;
    }

    @Override
    public void close() {
        kv.close();
    }

    private void apply(SlotOp op) {
        switch (op) {
            case SlotOp.Admit a -> {
                Slot s = new Slot();
                s.sampling = a.sampling();
                s.promptLength = a.promptLength();
                s.appendBlocks(a.blocks());
                slots[a.slot()] = s;
            }
            case SlotOp.AppendBlocks b -> live(b.slot()).appendBlocks(b.blocks());
            case SlotOp.Evict e -> {
                live(e.slot());
                slots[e.slot()] = null;
            }
            case SlotOp.Move m -> {
                slots[m.to()] = live(m.from());
                slots[m.from()] = null;
            }
        }
    }

    private Slot live(int slot) {
        Slot s = slot >= 0 && slot < slots.length ? slots[slot] : null;
        if (s == null) {
            throw new IllegalStateException("slot " + slot + " holds no sequence");
        }
        return s;
    }
}
