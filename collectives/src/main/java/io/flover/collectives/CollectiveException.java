package io.flover.collectives;

/** A collective operation failed: a peer died, closed its side or did not answer within the timeout. */
public final class CollectiveException extends RuntimeException {
    public CollectiveException(String message) {
        super(message);
    }

    public CollectiveException(String message, Throwable cause) {
        super(message, cause);
    }
}
