package io.flover.coordinator;

import io.flover.model.InvalidFieldException;
import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.GroupLostException;
import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.StepRunner;
import io.flover.worker.TokenLogprobs;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The fusion schedule's loop. One thread owns it: at every token boundary it asks the {@link Planner} which waiting
 * requests join (as the policy allows and KV blocks, slots and the step's token budget permit), how many tokens
 * each sequence feeds and whom to preempt, applies that plan to the batch and the {@link KvCacheManager}, runs
 * the fused step, and hands each sampled token to the {@link OutputProcessor}, which detokenises and writes to
 * the client on its own thread. Finished and cancelled sequences leave at once: their blocks return to the pool
 * and the last live slot moves into the hole, so the batch stays dense. Other threads only submit and cancel,
 * through the inbox, and the output processor says when a stop string ended a sequence.
 *
 * <p>When the runner is lost (a worker of its group died), the scheduler stops and hands every sequence it holds,
 * running or waiting, to its {@code orphans} handler, which resumes them on another scheduler: they are recomputed
 * from their prompt and the tokens already streamed, so clients see neither a gap nor a repeat.
 */
public final class Scheduler implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Scheduler.class.getName());
    private static final long IDLE_POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    private static final String SHUT_DOWN = "the server shut down before the request finished; retry";

    /** Thrown by {@link #submit} when the waiting queue is full. */
    public static final class QueueFullException extends Exception {
        QueueFullException(String message) {
            super(message);
        }
    }

    /** A submitted request, for cancelling it. */
    public interface Handle {
        /** Ends the request with reason CANCELLED and frees its blocks at the next step boundary (idempotent). */
        void cancel();
    }

    /** Counters for tests, logs and metrics. */
    public record Stats(int running, int waiting, int freeBlocks, int totalBlocks, long steps, long slotMoves,
                        long preemptions, long generatedTokens) {
    }

    private final StepRunner runner;
    private final BiConsumer<Scheduler, List<Sequence>> orphans;
    private final ServingMetrics metrics;
    private final OutputProcessor output;
    /** Whether the output processor is this scheduler's alone, to close with it. */
    private final boolean ownsOutput;
    private final ModelConfig model;
    private final Tokenizer tokenizer;
    private final SchedulerConfig config;
    private final KvCacheManager kv;
    /** What this group's steps cost, for {@link SchedulerConfig#stepBudgetNanos()}. */
    private final StepCost cost = new StepCost();
    private final Thread thread;

    private final LinkedBlockingQueue<Runnable> inbox = new LinkedBlockingQueue<>();
    private final AtomicInteger queued = new AtomicInteger();
    private final AtomicLong nextId = new AtomicLong();
    private volatile boolean closing;
    /** Why the runner was lost, once it was. */
    private volatile RuntimeException lost;
    private volatile Stats stats;

    // Scheduler-thread state.
    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    /** The live batch: index = slot. */
    private final ArrayList<Sequence> running = new ArrayList<>();
    private final List<SlotOp> pendingOps = new ArrayList<>();
    private long steps;
    private long slotMoves;
    private long preemptions;
    private long generatedTokens;
    /** Preempted sequences back in {@code waiting}: they do not count against {@code maxWaiting}. */
    private int preemptedWaiting;

    /**
     * {@code tokenizer} may be null (requests are then ids only, and carry no text). Sequences of a lost runner
     * end with UNAVAILABLE.
     */
    public Scheduler(StepRunner runner, ModelConfig model, Tokenizer tokenizer, int numBlocks, SchedulerConfig config) {
        this(runner, model, tokenizer, numBlocks, config, (self, orphaned) -> self.endUnavailable(orphaned),
                ServingMetrics.none(), null);
    }

    /** {@code output} null: the scheduler starts an output processor of its own. */
    Scheduler(StepRunner runner, ModelConfig model, Tokenizer tokenizer, int numBlocks, SchedulerConfig config,
              BiConsumer<Scheduler, List<Sequence>> orphans, ServingMetrics metrics, OutputProcessor output) {
        this.runner = runner;
        this.ownsOutput = output == null;
        this.output = ownsOutput ? new OutputProcessor() : output;
        this.orphans = orphans;
        this.metrics = metrics;
        this.model = model;
        this.tokenizer = tokenizer;
        this.kv = new KvCacheManager(numBlocks, config.blockSize());
        this.config = config;
        publishStats();
        this.thread = Thread.ofPlatform().name("flover-scheduler").daemon().start(this::loop);
    }

    public ModelConfig model() {
        return model;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public SchedulerConfig config() {
        return config;
    }

    /**
     * Queues a request. Fails with IllegalArgumentException (naming the field) for a request the model cannot
     * serve, and with QueueFullException when too many are waiting.
     */
    public Handle submit(GenerationRequest request, GenerationListener listener) throws QueueFullException {
        request.validate(model);
        // A request must be able to finish alone, or it could be preempted and readmitted forever.
        if (kv.blocksFor(request.promptIds().length + request.maxTokens()) > kv.total()) {
            throw new InvalidFieldException("max_tokens", "prompt (" + request.promptIds().length
                    + " tokens) plus max_tokens (" + request.maxTokens() + ") exceeds the KV cache of "
                    + kv.total() * kv.blockSize() + " positions");
        }
        if (queued.incrementAndGet() > config.maxWaiting()) {
            queued.decrementAndGet();
            throw new QueueFullException("too many requests waiting (" + config.maxWaiting() + "); retry later");
        }
        Sequence seq = new Sequence(nextId.incrementAndGet(), request, listener,
                new StopChecker(request, model, tokenizer), System.nanoTime());
        seq.owner = this;
        // Checked under the lock the loop takes for its final drain: a request is either drained or refused.
        synchronized (inbox) {
            if (closing) {
                queued.decrementAndGet();
                throw new IllegalStateException("the scheduler is shutting down");
            }
            inbox.add(() -> waiting.addLast(seq));
        }
        return () -> {
            if (!seq.cancelled) {
                seq.cancelled = true;
                seq.owner.wake(); // the next plan ends it
            }
        };
    }

    /**
     * Takes over sequences of a lost scheduler, ahead of this one's waiting requests (they arrived earlier). Returns
     * false, taking none, if this scheduler is closing too.
     */
    boolean adopt(List<Sequence> orphaned) {
        synchronized (inbox) {
            if (closing) {
                return false;
            }
            inbox.add(() -> {
                for (Sequence s : orphaned.reversed()) {
                    s.owner = this;
                    s.preempted = true;
                    waiting.addFirst(s);
                    preemptedWaiting++;
                }
            });
        }
        return true;
    }

    /** Treats the runner as lost: the loop stops and hands its sequences to the orphans handler. */
    void retire(RuntimeException why) {
        lost = why;
        wake();
    }

    /**
     * Load, for choosing among replicas: sequences running (as of the last step) and requests queued (counted at
     * once, so a burst of submits spreads instead of piling onto whichever replica looked idle first).
     */
    int load() {
        return stats.running() + queued.get();
    }

    void wake() {
        inbox.add(() -> { });
    }

    /** The output processor's word: a stop string ended {@code s} after its {@code k}-th generated token. */
    void stopped(Sequence s, int k) {
        s.stoppedAt = k;
        wake(); // the next plan ends it, as it ends cancelled ones
    }

    /** A consistent snapshot, published after every step. */
    public Stats stats() {
        return stats;
    }

    /** Stops the loop; requests still running or waiting end with UNAVAILABLE. */
    @Override
    public void close() {
        closing = true;
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void loop() {
        try {
            while (!closing && lost == null) {
                drainInbox(running.isEmpty());
                long planning = System.nanoTime();
                int stepTokens = config.stepBudgetNanos() == 0 ? config.maxStepTokens()
                        : cost.tokensWithin(config.stepBudgetNanos(), config.maxStepTokens());
                StepPlan plan = Planner.plan(config, stepTokens, live(), waitingQueue(), kv.free(), oldestWait());
                apply(plan);
                metrics.phase("plan", System.nanoTime() - planning);
                publishStats(); // the admitted count as running while their first step runs
                if (plan.runs()) {
                    step(plan.chunks());
                }
                publishStats();
            }
        } catch (InterruptedException e) {
            // closing
        } catch (RuntimeException | Error e) {
            LOG.log(Level.SEVERE, "scheduler failed", e);
        } finally {
            synchronized (inbox) {
                closing = true; // also when the loop died: later submits are refused, not left unanswered
                drainQuietly();
            }
            if (lost != null) {
                handOver();
            }
            for (Sequence s : List.copyOf(running)) {
                if (!s.dead) {
                    finish(s, FinishReason.UNAVAILABLE, SHUT_DOWN);
                }
            }
            for (Sequence s : waiting) {
                output.finished(s, FinishReason.UNAVAILABLE, SHUT_DOWN);
            }
            waiting.clear();
            queued.set(0);
            publishStats();
            runner.close();
            if (ownsOutput) {
                output.close();
            }
        }
    }

    /** Gives every sequence to the orphans handler, as if preempted: none of its KV survives the runner. */
    private void handOver() {
        List<Sequence> orphaned = new ArrayList<>();
        for (Sequence s : List.copyOf(running)) {
            leaveBatch(s);
            if (s.dead) {
                continue; // finished already
            }
            s.computed = 0;
            orphaned.add(s);
        }
        orphaned.addAll(waiting);
        waiting.clear();
        orphaned.removeIf(s -> {
            if (s.cancelled || s.stoppedAt >= 0) {
                output.finished(s, FinishReason.CANCELLED, null);
            }
            return s.cancelled || s.stoppedAt >= 0;
        });
        LOG.warning(() -> "lost the runner (" + lost.getMessage() + "); handing over " + orphaned.size()
                + " requests");
        if (!orphaned.isEmpty()) {
            orphans.accept(this, orphaned);
        }
    }

    /** The orphans handler of a scheduler that stands alone. */
    private void endUnavailable(List<Sequence> orphaned) {
        for (Sequence s : orphaned) {
            output.finished(s, FinishReason.UNAVAILABLE, "no worker group is left to finish the request");
        }
    }

    /** Runs submitted actions; blocks for the first one when idle (or until the policy's delay is up). */
    private void drainInbox(boolean idle) throws InterruptedException {
        Runnable r;
        if (idle) {
            long waitNanos = IDLE_POLL_NANOS;
            if (!waiting.isEmpty()) {
                waitNanos = Math.min(waitNanos, config.policy().nanosUntilAdmissible(oldestWait()));
            }
            r = waitNanos > 0 ? inbox.poll(waitNanos, TimeUnit.NANOSECONDS) : inbox.poll();
        } else {
            r = inbox.poll();
        }
        while (r != null) {
            r.run();
            r = inbox.poll();
        }
    }

    private void drainQuietly() {
        for (Runnable r = inbox.poll(); r != null; r = inbox.poll()) {
            r.run();
        }
    }

    /** How long the oldest request that can still be admitted has waited. */
    private long oldestWait() {
        for (Sequence s : waiting) {
            if (!ending(s)) {
                return System.nanoTime() - s.arrivalNanos;
            }
        }
        return 0;
    }

    private List<Planner.Live> live() {
        List<Planner.Live> live = new ArrayList<>(running.size());
        for (Sequence s : running) {
            live.add(new Planner.Live(s.id, s.length, s.computed, s.blockCount, s.dead, ending(s)));
        }
        return live;
    }

    private List<Planner.Waiting> waitingQueue() {
        List<Planner.Waiting> queue = new ArrayList<>(waiting.size());
        for (Sequence s : waiting) {
            queue.add(new Planner.Waiting(s.id, s.length, ending(s)));
        }
        return queue;
    }

    /**
     * Whether the sequence is to end at this step boundary: its client cancelled it (or was given up as stalled),
     * or a stop string ended its output already (the CANCELLED the output processor then hears is dropped).
     */
    private static boolean ending(Sequence s) {
        return s.cancelled || s.stoppedAt >= 0;
    }

    /**
     * Carries out the plan's cancellations, admissions, block growth and preemptions, recording the slot operations
     * they make.
     */
    private void apply(StepPlan plan) {
        for (StepPlan.Action action : plan.actions()) {
            switch (action) {
                case StepPlan.Drop d -> drop(d.id());
                case StepPlan.Cancel c -> finish(running.get(c.slot()), FinishReason.CANCELLED, null);
                case StepPlan.Admit a -> admit(waiting.pollFirst(), allocate(a.blocks()));
                case StepPlan.Grow g -> {
                    Sequence s = running.get(g.slot());
                    int[] blocks = allocate(g.blocks());
                    s.addBlocks(blocks);
                    pendingOps.add(new SlotOp.AppendBlocks(s.slot, blocks));
                }
                case StepPlan.Preempt p -> preempt(running.get(p.slot()));
            }
        }
    }

    /** Ends a waiting request that was cancelled before its admission. */
    private void drop(long id) {
        for (Iterator<Sequence> it = waiting.iterator(); it.hasNext(); ) {
            Sequence s = it.next();
            if (s.id == id) {
                it.remove();
                if (s.preempted) {
                    preemptedWaiting--;
                } else {
                    queued.decrementAndGet();
                }
                output.finished(s, FinishReason.CANCELLED, null);
                return;
            }
        }
        throw new IllegalStateException("the plan dropped request " + id + ", which is not waiting");
    }

    private int[] allocate(int n) {
        int[] blocks = kv.allocate(n);
        if (blocks == null) {
            throw new IllegalStateException("the plan counted on " + n + " free KV blocks; " + kv.free() + " are");
        }
        return blocks;
    }

    private void admit(Sequence s, int[] blocks) {
        if (s.preempted) {
            s.preempted = false;
            preemptedWaiting--;
        } else {
            queued.decrementAndGet();
        }
        s.addBlocks(blocks);
        s.slot = running.size();
        running.add(s);
        if (s.firstScheduledNanos < 0) {
            s.firstScheduledNanos = System.nanoTime();
        }
        pendingOps.add(new SlotOp.Admit(s.slot, s.request.sampling(), s.promptLength, blocks));
    }

    /** Builds, runs and applies one fused step: slot {@code s} feeds its next {@code chunk[s]} tokens. */
    private void step(int[] chunk) {
        List<Sequence> entries = new ArrayList<>();
        int totalTokens = 0;
        for (Sequence s : running) {
            if (chunk[s.slot] > 0) {
                entries.add(s);
                totalTokens += chunk[s.slot];
            }
        }
        int n = entries.size();
        int[] tokens = new int[totalTokens];
        int[] slots = new int[n];
        int[] lengths = new int[n];
        int[] first = new int[n];
        boolean[] sample = new boolean[n];
        boolean[] scorePrompt = new boolean[n];
        int[] nextPromptTokens = new int[n];
        int continued = 0;
        for (int i = 0, at = 0; i < n; i++) {
            Sequence s = entries.get(i);
            slots[i] = s.slot;
            lengths[i] = chunk[s.slot];
            first[i] = s.computed;
            sample[i] = !s.dead && s.computed + lengths[i] == s.length;
            // Until its prompt's log-probabilities are delivered a sequence feeds only its prompt.
            scorePrompt[i] = !s.dead && s.promptLogprobs != null;
            if (scorePrompt[i] && !sample[i]) {
                nextPromptTokens[continued++] = s.tokens[s.computed + lengths[i]];
            }
            System.arraycopy(s.tokens, s.computed, tokens, at, lengths[i]);
            at += lengths[i];
        }
        boolean scores = false;
        for (boolean b : scorePrompt) {
            scores |= b;
        }
        Step step = new Step(steps++, pendingOps, tokens, slots, lengths, first, sample,
                scores ? scorePrompt : new boolean[0], Arrays.copyOf(nextPromptTokens, continued));
        pendingOps.clear();
        StepResult sampled;
        long started = System.nanoTime();
        try {
            sampled = runner.run(step);
            long took = System.nanoTime() - started;
            metrics.stepped(took, totalTokens);
            cost.observe(totalTokens, took);
        } catch (GroupLostException e) {
            lost = e; // the loop ends and hands every sequence over
            return;
        } catch (RuntimeException e) {
            LOG.log(Level.SEVERE, "step " + step.id() + " failed; failing its " + running.size() + " sequences", e);
            runner.reset();
            for (Sequence s : List.copyOf(running)) {
                if (!s.dead) {
                    finish(s, FinishReason.ERROR, "step failed: " + e.getMessage());
                }
            }
            pendingOps.clear(); // the runner forgot every slot already
            return;
        }
        long now = System.nanoTime();
        for (int i = 0, row = 0, scored = 0; i < n; i++) {
            Sequence s = entries.get(i);
            if (s.dead) {
                continue; // its row is recomputed in place, step after step: the cost of not reordering
            }
            int count = step.promptTokensScored(i); // the tokens after its first, and the prompt's next unless it samples
            if (count > 0 && sampled.promptLogprobs() != null) { // null from a runner that computes none (self-test)
                System.arraycopy(sampled.promptLogprobs(), scored, s.promptLogprobs, s.computed + 1, count);
                scored += count;
            }
            s.computed += lengths[i];
            if (sample[i]) {
                if (s.promptLogprobs != null) {
                    output.promptLogprobs(s, s.promptLogprobs);
                    s.promptLogprobs = null;
                }
                if (s.request.maxTokens() == 0) {
                    finish(s, FinishReason.LENGTH, null); // the prompt alone was asked for
                } else {
                    accept(s, sampled.sampled()[row], sampled.logprobs() == null ? null : sampled.logprobs()[row], now);
                }
                row++;
            }
        }
        metrics.phase("apply", System.nanoTime() - now);
    }

    /** Frees a sequence's blocks and sends it back to the front of the queue, to be recomputed later. */
    private void preempt(Sequence s) {
        preemptions++;
        metrics.preempted();
        leaveBatch(s);
        s.computed = 0;
        s.preempted = true;
        waiting.addFirst(s);
        preemptedWaiting++;
        LOG.fine(() -> "preempted sequence " + s.id + " (" + s.length + " tokens) for lack of KV blocks");
    }

    /**
     * Takes the sampled token and hands it to the output processor; ends the sequence at once if the token alone
     * says so (a stop id, its length). Stop strings are the output processor's to find.
     */
    private void accept(Sequence s, int token, TokenLogprobs tokenLogprobs, long now) {
        s.append(token);
        generatedTokens++;
        if (s.firstTokenNanos < 0) {
            s.firstTokenNanos = now;
        }
        FinishReason reason = s.stopChecker.stopsAt(token, s.generated(), s.length);
        output.token(s, token, tokenLogprobs, s.generated(), reason);
        if (reason != null) {
            leave(s);
        }
    }

    private void finish(Sequence s, FinishReason reason, String error) {
        leave(s);
        output.finished(s, reason, error);
    }

    /** Takes a finished sequence out of the batch (or, without reordering, marks its row dead). */
    private void leave(Sequence s) {
        if (config.reorder()) {
            leaveBatch(s);
        } else {
            s.dead = true;
            while (!running.isEmpty() && running.getLast().dead) {
                leaveBatch(running.getLast());
            }
        }
    }

    /** Returns the blocks at once and moves the last live slot into the hole (buffer reordering). */
    private void leaveBatch(Sequence s) {
        kv.release(s.blocks, s.blockCount);
        s.blockCount = 0;
        int hole = s.slot;
        int last = running.size() - 1;
        pendingOps.add(new SlotOp.Evict(hole));
        if (hole != last) {
            Sequence moved = running.get(last);
            running.set(hole, moved);
            moved.slot = hole;
            pendingOps.add(new SlotOp.Move(last, hole));
            slotMoves++;
        }
        running.remove(last);
        s.slot = -1;
    }

    private void publishStats() {
        stats = new Stats(running.size(), queued.get() + preemptedWaiting, kv.free(), kv.total(), steps, slotMoves, preemptions,
                generatedTokens);
    }
}
