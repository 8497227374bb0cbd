package io.flover.model.tokenizer;

/**
 * Incremental decoding of generated ids. A multi-byte UTF-8 character whose bytes are spread
 * over several tokens is held back until it is complete, so no delta ever ends or starts in the
 * middle of a character. Concatenating all deltas and {@link #flush()} gives the same text as
 * {@link Tokenizer#decode} of all ids.
 */
public interface StreamDecoder {

    /**
     * Adds one id and returns the text it completes, possibly empty.
     *
     * @throws IllegalArgumentException if the id is not in the vocabulary
     */
    String push(int id);

    /** Returns what is still held back, incomplete bytes as U+FFFD, and empties the buffer. */
    String flush();
}
