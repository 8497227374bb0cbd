package io.flover.coordinator;

import io.flover.model.ModelConfig;
import io.flover.model.tokenizer.Tokenizer;
import java.util.HashSet;
import java.util.Set;

/**
 * The output side of one request: turns each generated id into the text it releases and decides when generation
 * ends (an end-of-sequence or stop id, a stop string, {@code max_tokens} or the context length).
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
        // Checkpoints often pad the vocabulary past the tokenizer's ids: such an id has no text.
        String delta = text == null || token >= tokenizerVocab ? "" : text.push(token);
        FinishReason reason = null;
        if (stopIds.contains(token) || (text != null && text.stopped())) {
            reason = FinishReason.STOP;
        } else if (generated == maxTokens || length == contextLength) {
            reason = FinishReason.LENGTH;
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
