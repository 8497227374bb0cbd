package io.flover.coordinator;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The schedule's decisions for one step, as a pure function of what the scheduler holds: which sequences end
 * because they were cancelled, which waiting requests join the batch, how many tokens each live sequence feeds,
 * which sequences grow into more KV blocks, and whom to preempt when the blocks run out. The scheduler applies
 * the plan (block ids, slot operations, the step itself); nothing here touches a model, a thread or the pool, so
 * every decision is testable on its own.
 */
final class Planner {
    /**
     * A sequence of the live batch, at its slot: tokens so far, how many of them have KV in the cache, the blocks
     * it holds, whether it finished but keeps its row (without buffer reordering), and whether it is to end now
     * ({@code cancelled}: by its client, as a stalled stream, or by a stop string the output processor found).
     */
    record Live(long id, int length, int computed, int blocks, boolean dead, boolean cancelled) {
        int pending() {
            return length - computed;
        }
    }

    /**
     * A request waiting to join: the tokens its prefill computes (more than the prompt after a preemption), and
     * whether it was cancelled before it could.
     */
    record Waiting(long id, int length, boolean cancelled) {
    }

    private Planner() {
    }

    /**
     * Plans the next step over {@code running} (in slot order) and {@code waiting} (in queue order) with
     * {@code freeBlocks} free KV blocks. Cancelled requests go first: those waiting are dropped, and cancelled
     * sequences leave the batch, last slot first, their blocks free for this very step. Newcomers join oldest
     * first, while the policy, the batch's slots and the admission reserve allow; then every live sequence's decode
     * token is planned, then prompt chunks in slot order with what is left of {@code stepTokens} (at most
     * {@code maxStepTokens}; fewer where a time budget says so), though at least one KV block's worth, so that a
     * prompt always advances; then each sequence with a chunk gets the blocks it needs, the newest being preempted
     * (and the last slot moved into its place) whenever the pool runs dry.
     */
    static StepPlan plan(SchedulerConfig config, int stepTokens, List<Live> running, List<Waiting> waiting,
                         int freeBlocks, long oldestWaitNanos) {
        int blockSize = config.blockSize();
        List<Live> batch = new ArrayList<>(running);
        List<StepPlan.Action> actions = new ArrayList<>();
        int free = freeBlocks;

        List<Waiting> queue = new ArrayList<>(waiting.size());
        for (Waiting w : waiting) {
            if (w.cancelled()) {
                actions.add(new StepPlan.Drop(w.id()));
            } else {
                queue.add(w);
            }
        }
        for (int slot = batch.size() - 1; slot >= 0; slot--) {
            if (slot < batch.size() && batch.get(slot).cancelled() && !batch.get(slot).dead()) {
                actions.add(new StepPlan.Cancel(batch.get(slot).id(), slot));
                free += leave(batch, slot, config.reorder());
            }
        }

        int allowed = config.policy().admissible(batch.size(), queue.size(), oldestWaitNanos);
        for (Waiting w : queue) {
            if (allowed-- <= 0 || batch.size() >= config.maxBatch()) {
                break;
            }
            int need = KvCacheManager.blocksFor(w.length(), blockSize);
            if (!KvCacheManager.admits(free, need, batch.size())) {
                break;
            }
            free -= need;
            actions.add(new StepPlan.Admit(w.id(), batch.size(), need));
            batch.add(new Live(w.id(), w.length(), 0, need, false, false));
        }

        int[] chunk = new int[batch.size()];
        int decodes = 0;
        for (int slot = 0; slot < batch.size(); slot++) {
            if (batch.get(slot).pending() == 1) {
                chunk[slot] = 1;
                decodes++;
            }
        }
        int budget = Math.max(Math.min(stepTokens, config.maxStepTokens()) - decodes,
                Math.min(blockSize, config.maxStepTokens() - decodes));
        for (int slot = 0; slot < batch.size(); slot++) {
            int pending = batch.get(slot).pending();
            if (pending > 1 && budget > 0) {
                chunk[slot] = Math.min(pending, budget);
                budget -= chunk[slot];
            }
        }

        scan:
        while (true) {
            for (int slot = 0; slot < batch.size(); slot++) {
                Live s = batch.get(slot);
                int need = chunk[slot] == 0 ? 0
                        : KvCacheManager.blocksFor(s.computed() + chunk[slot], blockSize) - s.blocks();
                if (need <= 0) {
                    continue;
                }
                if (need > free) {
                    int victim = KvCacheManager.victim(batch);
                    actions.add(new StepPlan.Preempt(batch.get(victim).id(), victim));
                    free += batch.get(victim).blocks();
                    int last = batch.size() - 1;
                    chunk[victim] = victim == last ? 0 : chunk[last]; // the chunk plan follows the slot move
                    chunk[last] = 0;
                    batch.set(victim, batch.get(last));
                    batch.remove(last);
                    continue scan; // slots moved: look again from the start (those served need nothing more)
                }
                free -= need;
                actions.add(new StepPlan.Grow(s.id(), slot, need));
                batch.set(slot, new Live(s.id(), s.length(), s.computed(), s.blocks() + need, s.dead(), false));
            }
            return new StepPlan(actions, Arrays.copyOf(chunk, batch.size()));
        }
    }

    /**
     * Takes the sequence at {@code slot} out of the batch as the scheduler does for one that ended: with reordering
     * the last slot moves into its place; without, its row stays, dead, until every row after it has ended too.
     * Returns the blocks that came free.
     */
    private static int leave(List<Live> batch, int slot, boolean reorder) {
        if (reorder) {
            int freed = batch.get(slot).blocks();
            batch.set(slot, batch.getLast());
            batch.removeLast();
            return freed;
        }
        Live s = batch.get(slot);
        batch.set(slot, new Live(s.id(), s.length(), s.computed(), s.blocks(), true, false));
        int freed = 0;
        while (!batch.isEmpty() && batch.getLast().dead()) {
            freed += batch.removeLast().blocks();
        }
        return freed;
    }
}
