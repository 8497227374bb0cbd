package io.flover.model;

/**
 * A request field that is wrong, named as the client wrote it: gRPC puts the message in its status, the OpenAI
 * API puts the field in the error's {@code param}.
 */
public final class InvalidFieldException extends IllegalArgumentException {
    private final String field;

    /** {@code message} says what is wrong and, as it is shown alone, names the field itself. */
    public InvalidFieldException(String field, String message) {
        super(message);
        this.field = field;
    }

    public String field() {
        return field;
    }
}
