package io.flover.worker;

/**
 * A tensor-parallel group can run no more steps: a rank died, stopped answering or failed in a collective, which
 * leaves the others' state unknown. The scheduler retires the group and resumes its requests elsewhere.
 */
public final class GroupLostException extends RuntimeException {
    public GroupLostException(String message, Throwable cause) {
        super(message, cause);
    }
}
