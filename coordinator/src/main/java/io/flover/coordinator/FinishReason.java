package io.flover.coordinator;

import java.util.Locale;

/** Why a generation ended. */
public enum FinishReason {
    /** An end-of-sequence token, a stop token id or a stop string. */
    STOP,
    /** {@code max_tokens} or the model's context length was reached. */
    LENGTH,
    /** The client cancelled or went away. */
    CANCELLED,
    /** The server could not finish the request. */
    ERROR,
    /** No worker group was left to finish the request; a retry may succeed once workers are back. */
    UNAVAILABLE;

    /** The lower-case name clients see, as in OpenAI-style APIs. */
    public String apiName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
