package io.flover.coordinator;

import io.flover.worker.TokenLogprobs;
import java.util.Arrays;

/**
 * One request inside the scheduler: its tokens so far (prompt, then generated), how many of them have KV in the
 * cache, the blocks that hold it, the slot it runs in, and where its output goes. Owned by the scheduler thread,
 * but for {@link #cancelled} and {@link #stoppedAt}, which others set, and the output processor's own fields.
 */
final class Sequence {
    final long id;
    final GenerationRequest request;
    final GenerationListener listener;
    final StopChecker stopChecker;
    final int promptLength;
    final long arrivalNanos;

    int[] tokens;
    int length;
    /** Tokens whose K/V are in the cache; the rest are fed by coming steps. */
    int computed;
    int[] blocks = new int[4];
    int blockCount;
    /** Row of the live batch, or -1 while waiting. */
    int slot = -1;
    /** Finished, but its row stays in the batch (only without buffer reordering) until the rows after it finish. */
    boolean dead;
    /** Sent back to the queue for lack of KV blocks; it will be recomputed from its tokens. */
    boolean preempted;
    /** The scheduler it is in: it changes when a lost group's sequences resume on another. */
    volatile Scheduler owner;
    /** Times it was handed over from a lost group. */
    int resumes;
    long firstScheduledNanos = -1;
    long firstTokenNanos = -1;
    volatile boolean cancelled;
    /** Set by the output processor when a stop string ended the sequence after this many generated tokens. */
    volatile int stoppedAt = -1;

    /**
     * The prompt's log-probabilities as steps score them, entry i for token i (the first stays null), from its
     * admission while the request asks for them until they are delivered; null otherwise, so a prompt recomputed
     * after a preemption is not scored again.
     */
    TokenLogprobs[] promptLogprobs;

    // The output processor's: generated tokens delivered to the listener, and whether it heard the end.
    int delivered;
    boolean ended;

    Sequence(long id, GenerationRequest request, GenerationListener listener, StopChecker stopChecker,
             long arrivalNanos) {
        this.id = id;
        this.request = request;
        this.listener = listener;
        this.stopChecker = stopChecker;
        int[] prompt = request.promptIds();
        this.promptLength = prompt.length;
        this.tokens = Arrays.copyOf(prompt, prompt.length + request.maxTokens());
        this.length = prompt.length;
        this.arrivalNanos = arrivalNanos;
        this.promptLogprobs = request.sampling().promptLogprobs() >= 0 ? new TokenLogprobs[prompt.length] : null;
    }

    int generated() {
        return length - promptLength;
    }

    /** Tokens still to be fed before the next sample. */
    int pending() {
        return length - computed;
    }

    void append(int token) {
        tokens[length++] = token;
    }

    void addBlocks(int[] more) {
        if (blockCount + more.length > blocks.length) {
            blocks = Arrays.copyOf(blocks, Math.max(2 * blocks.length, blockCount + more.length));
        }
        System.arraycopy(more, 0, blocks, blockCount, more.length);
        blockCount += more.length;
    }
}
