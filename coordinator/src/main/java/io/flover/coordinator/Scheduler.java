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
 * the fused step, and hands each sequence its sampled token. Finished and cancelled sequences leave at once:
 * their blocks return to the pool and the last live slot moves into the hole, so the batch stays dense. Other
 * threads only submit and cancel, through the inbox.
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
    private final ModelConfig model;
    private final Tokenizer tokenizer;
    private final SchedulerConfig config;
    private final KvCacheManager kv;
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
        this(runner, model, tokenizer, numBlocks, config, (self, orphaned) -> endUnavailable(orphaned),
                ServingMetrics.none());
    }

    Scheduler(StepRunner runner, ModelConfig model, Tokenizer tokenizer, int numBlocks, SchedulerConfig config,
              BiConsumer<Scheduler, List<Sequence>> orphans, ServingMetrics metrics) {
        this.runner = runner;
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
                seq.owner.wake(); // the loop sweeps cancelled sequences every iteration
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

    private void wake() {
        inbox.add(() -> { });
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
                sweepCancelled();
                StepPlan plan = Planner.plan(config, live(), waitingQueue(), kv.free(), oldestWait());
                apply(plan);
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
                notifyFinished(s, FinishReason.UNAVAILABLE, SHUT_DOWN);
            }
            waiting.clear();
            queued.set(0);
            publishStats();
            runner.close();
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
            if (s.cancelled) {
                notifyFinished(s, FinishReason.CANCELLED, null);
            }
            return s.cancelled;
        });
        LOG.warning(() -> "lost the runner (" + lost.getMessage() + "); handing over " + orphaned.size()
                + " requests");
        if (!orphaned.isEmpty()) {
            orphans.accept(this, orphaned);
        }
    }

    /** The orphans handler of a scheduler that stands alone. */
    static void endUnavailable(List<Sequence> orphaned) {
        for (Sequence s : orphaned) {
            endUnavailable(s, "no worker group is left to finish the request");
        }
    }

    static void endUnavailable(Sequence s, String why) {
        notifyFinished(s, FinishReason.UNAVAILABLE, why);
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

    private long oldestWait() {
        return waiting.isEmpty() ? 0 : System.nanoTime() - waiting.peekFirst().arrivalNanos;
    }

    private void sweepCancelled() {
        for (Iterator<Sequence> it = waiting.iterator(); it.hasNext(); ) {
            Sequence s = it.next();
            if (s.cancelled) {
                it.remove();
                if (s.preempted) {
                    preemptedWaiting--;
                } else {
                    queued.decrementAndGet();
                }
                notifyFinished(s, FinishReason.CANCELLED, null);
            }
        }
        for (int slot = running.size() - 1; slot >= 0; slot--) {
            Sequence s = running.get(slot);
            if (s.cancelled && !s.dead) {
                finish(s, FinishReason.CANCELLED, null);
            }
        }
    }

    private List<Planner.Live> live() {
        List<Planner.Live> live = new ArrayList<>(running.size());
        for (Sequence s : running) {
            live.add(new Planner.Live(s.id, s.length, s.computed, s.blockCount, s.dead));
        }
        return live;
    }

    private List<Planner.Waiting> waitingQueue() {
        List<Planner.Waiting> queue = new ArrayList<>(waiting.size());
        for (Sequence s : waiting) {
            queue.add(new Planner.Waiting(s.id, s.length));
        }
        return queue;
    }

    /** Carries out the plan's admissions, block growth and preemptions, recording the slot operations they make. */
    private void apply(StepPlan plan) {
        for (StepPlan.Action action : plan.actions()) {
            switch (action) {
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
        for (int i = 0, at = 0; i < n; i++) {
            Sequence s = entries.get(i);
            slots[i] = s.slot;
            lengths[i] = chunk[s.slot];
            first[i] = s.computed;
            sample[i] = !s.dead && s.computed + lengths[i] == s.length;
            System.arraycopy(s.tokens, s.computed, tokens, at, lengths[i]);
            at += lengths[i];
        }
        Step step = new Step(steps++, pendingOps, tokens, slots, lengths, first, sample);
        pendingOps.clear();
        StepResult sampled;
        long started = System.nanoTime();
        try {
            sampled = runner.run(step);
            metrics.stepped(System.nanoTime() - started, totalTokens);
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
        for (int i = 0, row = 0; i < n; i++) {
            Sequence s = entries.get(i);
            if (s.dead) {
                continue; // its row is recomputed in place, step after step: the cost of not reordering
            }
            s.computed += lengths[i];
            if (sample[i]) {
                accept(s, sampled.sampled()[row], sampled.logprobs() == null ? null : sampled.logprobs()[row], now);
                row++;
            }
        }
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

    /** Takes the sampled token, streams it, and ends the sequence if it should stop. */
    private void accept(Sequence s, int token, TokenLogprobs tokenLogprobs, long now) {
        s.append(token);
        generatedTokens++;
        if (s.firstTokenNanos < 0) {
            s.firstTokenNanos = now;
        }
        StopChecker.Emitted out;
        try {
            out = s.stopChecker.accept(token, s.generated(), s.length);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "sequence " + s.id + " could not take token " + token, e);
            finish(s, FinishReason.ERROR, "could not decode token " + token + ": " + e.getMessage());
            return;
        }
        TokenLogprobs[] logprobs = tokenLogprobs == null ? null : new TokenLogprobs[] {tokenLogprobs};
        safely(s, () -> s.listener.onTokens(new int[] {token}, out.text(), logprobs), "tokens");
        if (out.finishReason() != null) {
            finish(s, out.finishReason(), null);
        }
    }

    private void finish(Sequence s, FinishReason reason, String error) {
        if (config.reorder()) {
            leaveBatch(s);
        } else {
            s.dead = true;
            while (!running.isEmpty() && running.getLast().dead) {
                leaveBatch(running.getLast());
            }
        }
        notifyFinished(s, reason, error);
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

    private static void notifyFinished(Sequence s, FinishReason reason, String error) {
        long now = System.nanoTime();
        double queue = ((s.firstScheduledNanos < 0 ? now : s.firstScheduledNanos) - s.arrivalNanos) / 1e9;
        double ttft = s.firstTokenNanos < 0 ? 0 : (s.firstTokenNanos - s.arrivalNanos) / 1e9;
        GenerationListener.Outcome outcome = new GenerationListener.Outcome(reason, s.promptLength, s.generated(), queue,
                ttft, (now - s.arrivalNanos) / 1e9, error);
        safely(s, () -> s.listener.onFinished(outcome), "finish");
    }

    /** A listener that throws (a broken client stream) must not take the scheduler down. */
    private static void safely(Sequence s, Runnable call, String what) {
        try {
            call.run();
        } catch (RuntimeException e) {
            LOG.log(Level.FINE, "listener of sequence " + s.id + " failed on " + what, e);
            s.cancelled = true;
        }
    }

    private void publishStats() {
        stats = new Stats(running.size(), queued.get() + preemptedWaiting, kv.free(), kv.total(), steps, slotMoves, preemptions,
                generatedTokens);
    }
}
