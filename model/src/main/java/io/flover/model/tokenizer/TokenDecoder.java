package io.flover.model.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The decoder of a tokenizer.json, reduced to what streaming needs: the bytes of each token on
 * its own, plus a number of leading bytes to strip from the start of the whole output.
 *
 * <p>Hugging Face decoders work on the list of token strings. Those used by BPE tokenizers are
 * per-token string edits ({@code Replace}, {@code Metaspace}, a {@code Strip} before
 * {@code Fuse}), a conversion to bytes ({@code ByteLevel}, {@code ByteFallback}), joining
 * ({@code Fuse}) and finally a {@code Strip} of the joined text, which can only remove leading
 * characters here since a stream cannot look ahead to the end.
 *
 * @param edits per-token string edits, in order
 * @param byteLevel whether tokens are byte-level strings
 * @param byteFallback whether {@code <0xNN>} tokens stand for the byte NN
 * @param stripByte the ASCII character stripped from the start of the output
 * @param stripCount how many of them at most
 */
record TokenDecoder(List<Edit> edits, boolean byteLevel, boolean byteFallback, byte stripByte, int stripCount) {

    /** A per-token string edit; {@code first} is whether the token is the first one decoded. */
    @FunctionalInterface
    interface Edit {
        String apply(String token, boolean first);
    }

    /** The bytes of {@code token} (a vocabulary token, not an added one). */
    byte[] bytes(String token, boolean first) {
        for (Edit edit : edits) {
            token = edit.apply(token, first);
        }
        if (byteLevel) {
            byte[] bytes = ByteLevel.decode(token);
            // Like tokenizers, a token with a character outside the byte mapping stays as it is.
            if (bytes != null) {
                return bytes;
            }
        }
        if (byteFallback && token.length() == 6 && token.startsWith("<0x") && token.endsWith(">")) {
            int hi = Character.digit(token.charAt(3), 16);
            int lo = Character.digit(token.charAt(4), 16);
            if (hi >= 0 && lo >= 0) {
                return new byte[] {(byte) (hi << 4 | lo)};
            }
        }
        return token.getBytes(StandardCharsets.UTF_8);
    }
}
