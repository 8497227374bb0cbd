package io.flover.coordinator;

import io.flover.worker.TokenLogprobs;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The output side of serving, on its own thread: it turns each sequence's sampled ids into text, watches for stop
 * strings and writes to the client's listener, so the next step never waits for a detokeniser or a client's
 * stream. The only thing it tells a scheduler is that a sequence stopped at a stop string after its k-th token;
 * tokens sampled past that point (a step or two, until the scheduler hears) are dropped here. Events are handled in
 * the order they were posted, so replicas that hand sequences to each other share one processor.
 */
final class OutputProcessor implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(OutputProcessor.class.getName());
    private static final Runnable STOP = () -> { };

    private final LinkedBlockingQueue<Runnable> queue = new LinkedBlockingQueue<>();
    private final Thread thread;
    private boolean closed;

    OutputProcessor() {
        thread = Thread.ofPlatform().name("flover-output").daemon().start(this::run);
    }

    /**
     * Sequence {@code s} sampled its {@code generated}-th token, with its log-probabilities if asked (else null);
     * {@code reason} says whether the token ends it without looking at text (an end-of-sequence or stop id, its
     * length), or is null.
     */
    void token(Sequence s, int token, TokenLogprobs logprobs, int generated, FinishReason reason) {
        post(() -> emit(s, token, logprobs, generated, reason));
    }

    /** Sequence {@code s}'s prompt was scored: its log-probabilities, before its first token. */
    void promptLogprobs(Sequence s, TokenLogprobs[] logprobs) {
        post(() -> {
            if (!s.ended) {
                safely(s, () -> s.listener.onPromptLogprobs(logprobs), "prompt logprobs");
            }
        });
    }

    /** Sequence {@code s} ended without a token of its own: cancelled, failed or unavailable. */
    void finished(Sequence s, FinishReason reason, String error) {
        post(() -> end(s, reason, error, s.delivered));
    }

    private void emit(Sequence s, int token, TokenLogprobs logprobs, int generated, FinishReason tokenReason) {
        if (s.ended) {
            return;
        }
        StopChecker.Emitted out;
        try {
            out = s.stopChecker.text(token, tokenReason);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "sequence " + s.id + " could not take token " + token, e);
            end(s, FinishReason.ERROR, "could not decode token " + token + ": " + e.getMessage(), generated);
            s.owner.stopped(s, generated);
            return;
        }
        s.delivered = generated;
        TokenLogprobs[] perToken = logprobs == null ? null : new TokenLogprobs[] {logprobs};
        safely(s, () -> s.listener.onTokens(new int[] {token}, out.text(), perToken), "tokens");
        if (out.finishReason() != null) {
            end(s, out.finishReason(), null, generated);
            if (tokenReason == null) {
                s.owner.stopped(s, generated); // a stop string: only this side knows
            }
        }
    }

    private static void end(Sequence s, FinishReason reason, String error, int generated) {
        if (s.ended) {
            return;
        }
        s.ended = true;
        long now = System.nanoTime();
        double queue = ((s.firstScheduledNanos < 0 ? now : s.firstScheduledNanos) - s.arrivalNanos) / 1e9;
        double ttft = s.firstTokenNanos < 0 ? 0 : (s.firstTokenNanos - s.arrivalNanos) / 1e9;
        GenerationListener.Outcome outcome = new GenerationListener.Outcome(reason, s.promptLength, generated, queue,
                ttft, (now - s.arrivalNanos) / 1e9, error);
        safely(s, () -> s.listener.onFinished(outcome), "finish");
    }

    /** A listener that throws (a broken client stream) cancels its request, and nothing else. */
    private static void safely(Sequence s, Runnable call, String what) {
        try {
            call.run();
        } catch (RuntimeException e) {
            LOG.log(Level.FINE, "listener of sequence " + s.id + " failed on " + what, e);
            s.cancelled = true;
            s.owner.wake();
        }
    }

    private void post(Runnable event) {
        synchronized (this) {
            if (!closed) {
                queue.add(event);
                return;
            }
        }
        // After close (a late hand-over): once the queue is drained, on the caller's thread, so nothing is lost.
        awaitDrained();
        event.run();
    }

    private void run() {
        while (true) {
            Runnable event;
            try {
                event = queue.take();
            } catch (InterruptedException e) {
                continue; // only close stops this thread, once the queue is drained
            }
            if (event == STOP) {
                return;
            }
            try {
                event.run();
            } catch (RuntimeException e) {
                LOG.log(Level.SEVERE, "output event failed", e);
            }
        }
    }

    /** Delivers what was posted, then stops the thread; later events run on the thread that posts them. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            queue.add(STOP);
        }
        awaitDrained();
    }

    private void awaitDrained() {
        if (Thread.currentThread() == thread) {
            return;
        }
        try {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
