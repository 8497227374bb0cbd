package io.flover.model.tokenizer;

/**
 * An entry of {@code added_tokens} in tokenizer.json: text that is cut out of the input before
 * the model sees it and maps directly to its id.
 *
 * @param special dropped by decoding that skips special tokens
 * @param singleWord only matches where it is not part of a longer word
 * @param lstrip the match takes in the whitespace before it
 * @param rstrip the match takes in the whitespace after it
 * @param normalized matched in the normalized text rather than the original
 */
record AddedToken(int id, String content, boolean special, boolean singleWord, boolean lstrip, boolean rstrip,
        boolean normalized) {
}
