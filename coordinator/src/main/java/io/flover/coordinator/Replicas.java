package io.flover.coordinator;

import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.worker.StepRunner;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Logger;

/**
 * The data-parallel replicas of one model: a scheduler per tensor-parallel group, each with its own KV pool.
 * Requests go to the least loaded; when a group is lost, its requests resume on the others, and end with
 * UNAVAILABLE only when no group is left.
 */
public final class Replicas implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Replicas.class.getName());
    /** A request that loses this many groups is not resumed again: it may be what breaks them. */
    static final int MAX_RESUMES = 2;

    private final ModelConfig model;
    private final Tokenizer tokenizer;
    private final ServingMetrics metrics;
    private final List<Scheduler> live = new CopyOnWriteArrayList<>();
    /** One for all replicas: a sequence's output stays in order when it moves to another group. */
    private final OutputProcessor output = new OutputProcessor();
    private volatile boolean draining;

    /** {@code tokenizer} may be null (requests are then ids only). */
    public Replicas(ModelConfig model, Tokenizer tokenizer, ServingMetrics metrics) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.metrics = metrics;
        metrics.watch(this);
    }

    public ModelConfig model() {
        return model;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public ServingMetrics metrics() {
        return metrics;
    }

    /** Starts serving with a new replica: a scheduler over {@code runner} with a pool of {@code numBlocks}. */
    public Scheduler add(StepRunner runner, int numBlocks, SchedulerConfig config) {
        Scheduler s = new Scheduler(runner, model, tokenizer, numBlocks, config, this::resume, metrics, output);
        live.add(s);
        return s;
    }

    /** Stops sending requests to {@code s} and resumes the ones it holds elsewhere (e.g. its group lost a worker). */
    public void retire(Scheduler s, RuntimeException why) {
        live.remove(s);
        s.retire(why);
    }

    /** Groups serving now. */
    public int size() {
        return live.size();
    }

    /**
     * Queues a request on the least loaded replica. Fails with IllegalArgumentException naming the field for a
     * request the model cannot serve, QueueFullException when that replica's queue is full, and
     * IllegalStateException when no replica is serving.
     */
    public Scheduler.Handle submit(GenerationRequest request, GenerationListener listener)
            throws Scheduler.QueueFullException {
        if (draining) {
            throw new IllegalStateException("the server is shutting down; retry on another replica");
        }
        GenerationListener metered = metrics.metered(listener);
        for (Scheduler s : byLoad()) {
            try {
                return s.submit(request, metered);
            } catch (IllegalStateException e) {
                live.remove(s); // it stopped between the choice and the submit: try the next
            }
        }
        throw new IllegalStateException("no worker group is ready to serve; retry later");
    }

    /**
     * Refuses new requests from now on, and waits up to {@code timeout} for the accepted ones (running or waiting)
     * to end. Returns whether they all did.
     */
    public boolean drain(Duration timeout) throws InterruptedException {
        draining = true;
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            Scheduler.Stats s = stats();
            if (s.running() + s.waiting() == 0) {
                return true;
            }
            if (System.nanoTime() >= deadline) {
                return false;
            }
            Thread.sleep(20);
        }
    }

    /** The sum over replicas. */
    public Scheduler.Stats stats() {
        int running = 0, waiting = 0, free = 0, total = 0;
        long steps = 0, moves = 0, preemptions = 0, generated = 0;
        for (Scheduler s : live) {
            Scheduler.Stats t = s.stats();
            running += t.running();
            waiting += t.waiting();
            free += t.freeBlocks();
            total += t.totalBlocks();
            steps += t.steps();
            moves += t.slotMoves();
            preemptions += t.preemptions();
            generated += t.generatedTokens();
        }
        return new Scheduler.Stats(running, waiting, free, total, steps, moves, preemptions, generated);
    }

    private List<Scheduler> byLoad() {
        return live.stream().sorted(Comparator.comparingInt(Scheduler::load)).toList();
    }

    private void resume(Scheduler from, List<Sequence> orphaned) {
        live.remove(from);
        List<Sequence> again = orphaned.stream().filter(s -> ++s.resumes <= MAX_RESUMES).toList();
        orphaned.stream().filter(s -> s.resumes > MAX_RESUMES).forEach(s -> output.finished(s,
                FinishReason.UNAVAILABLE,
                "the request was on " + MAX_RESUMES + " worker groups that failed; not resuming it again"));
        for (Scheduler s : byLoad()) {
            if (s.adopt(again)) {
                LOG.info(() -> "resuming " + again.size() + " requests of a lost group on another");
                return;
            }
        }
        for (Sequence s : again) {
            output.finished(s, FinishReason.UNAVAILABLE, "no worker group is left to finish the request");
        }
    }

    @Override
    public void close() {
        for (Scheduler s : live) {
            s.close();
        }
        live.clear();
        output.close();
    }
}
