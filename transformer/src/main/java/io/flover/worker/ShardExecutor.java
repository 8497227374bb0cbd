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

    /** Applies the step's slot operations, runs it and returns the sampled ids in entry order. */
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
        int topLogprobs = -1;
        for (int i = 0; i < n; i++) {
            SamplingParams p = slots[step.slots()[i]].sampling;
            withRows |= step.sample()[i] && !p.argmaxOfLogits();
            topLogprobs = step.sample()[i] ? Math.max(topLogprobs, p.logprobs()) : topLogprobs;
        }
        LogitRows logits = lm.forward(new StepBatch(step.tokens(), starts, step.lengths(), step.firstPositions(),
                tables, step.sample()), kv, withRows, topLogprobs);
        int vocab = lm.config().vocabSize();
        int[] sampled = new int[step.numSampled()];
        TokenLogprobs[] logprobs = topLogprobs < 0 ? null : new TokenLogprobs[sampled.length];
        for (int i = 0, row = 0; i < n; i++) {
            if (step.sample()[i]) {
                Slot s = slots[step.slots()[i]];
                long position = step.firstPositions()[i] + step.lengths()[i];
                sampled[row] = sampler.sample(logits, row, vocab, s.sampling, s.history, s.historyLength,
                        s.promptLength, position);
                if (s.sampling.logprobs() >= 0) {
                    logprobs[row] = logprobs(logits, row, vocab, sampled[row], s.sampling.logprobs());
                }
                row++;
            }
        }
        return new StepResult(sampled, logprobs);
    }

    /**
     * The sampled token's log-probability and the {@code top} best: its logit is in the rows where they were
     * fetched, and otherwise it is the argmax, whose logit is the best one.
     */
    private static TokenLogprobs logprobs(LogitRows logits, int row, int vocab, int token, int top) {
        LogitRows.Logprobs l = logits.logprobs();
        float logit = logits.rows() != null ? logits.rows()[row * vocab + token] : l.topLogits()[row * l.n()];
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
