package io.flover.coordinator;

import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import java.util.HashSet;
import java.util.Set;

/**
 * When one request's generation ends, and the text each generated id releases. The two halves run on different
 * threads when serving: {@link #stopsAt} (ids and lengths, no text) on the scheduler's, {@link #text} (the
 * detokeniser and stop strings) on the output processor's.
 */
final class StopChecker {
    /** What one generated token released, and the reason generation ends with it (null: it goes on). */
    record Emitted(String text, FinishReason finishReason) {
    }

    private final int maxTokens;
    private final int contextLength;
    private final Set<Integer> stopIds;
    private final TextStream text;
    private final int tokenizerVocab;

    /** {@code tokenizer} may be null: the request then produces ids only, and empty text. */
    StopChecker(GenerationRequest request, ModelConfig model, Tokenizer tokenizer) {
        this.maxTokens = request.maxTokens();
        this.contextLength = model.maxPositions();
        this.stopIds = new HashSet<>(request.stopTokenIds());
        if (!request.ignoreEos()) {
            stopIds.addAll(model.eosTokenIds());
        }
        this.text = tokenizer == null ? null : new TextStream(tokenizer.newStreamDecoder(true), request.stopStrings());
        this.tokenizerVocab = tokenizer == null ? 0 : tokenizer.vocabSize();
    }

    /** Takes the {@code generated}-th generated token, which brings the sequence to {@code length} tokens. */
    Emitted accept(int token, int generated, int length) {
        return text(token, stopsAt(token, generated, length));
    }

    /**
     * Whether generation ends with the {@code generated}-th generated token, which brings the sequence to
     * {@code length} tokens, for a reason that needs no text: an end-of-sequence or stop id, {@code max_tokens} or
     * the context length. Null: it goes on, unless a stop string ends it.
     */
    FinishReason stopsAt(int token, int generated, int length) {
        if (stopIds.contains(token)) {
            return FinishReason.STOP;
        }
        return generated == maxTokens || length == contextLength ? FinishReason.LENGTH : null;
    }

    /**
     * The text the next generated token releases, and why generation ends with it: {@code reason} (from
     * {@link #stopsAt}), or STOP when a stop string completes.
     */
    Emitted text(int token, FinishReason reason) {
        // Checkpoints often pad the vocabulary past the tokenizer's ids: such an id has no text.
        String delta = text == null || token >= tokenizerVocab ? "" : text.push(token);
        if (text != null && text.stopped()) {
            reason = FinishReason.STOP;
        }
        if (reason != null && text != null) {
            delta += text.finish(); // a stop string may still complete in the decoder's last bytes
            if (text.stopped()) {
                reason = FinishReason.STOP;
            }
        }
        return new Emitted(delta, reason);
    }
}
