package io.flover.model.tokenizer;

import io.flover.model.tokenizer.AddedTokenMatcher.Segment;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;

/**
 * A BPE tokenizer.json pipeline: added tokens are cut out of the text first, the rest is
 * normalized, pre-tokenized into words and each word split by the BPE model; the post-processor
 * template adds special tokens around the result.
 */
final class BpeTokenizer implements Tokenizer {

    private final BpeModel model;
    private final Map<String, Integer> addedIds = new HashMap<>();
    /** Added tokens matched in the original text. */
    private final AddedTokenMatcher rawAdded;
    /** Added tokens with {@code normalized: true}, matched in the normalized text. */
    private final AddedTokenMatcher normalizedAdded;
    private final UnaryOperator<String> normalizer;
    private final PreTokenizer preTokenizer;
    private final TokenDecoder decoder;
    private final int[] prefix;
    private final int[] suffix;
    /** Token string by id; null for an id that is neither in the vocabulary nor added. */
    private final String[] tokens;
    private final boolean[] added;
    private final boolean[] special;
    /** Decoded bytes by id for any position but the first, where the decoder may differ. */
    private final byte[][] tokenBytes;

    /**
     * @param vocab the model's vocabulary, for the token strings of its ids
     * @param prefix ids put before the text's when special tokens are added
     * @param suffix ids put after them
     */
    BpeTokenizer(BpeModel model, Map<String, Integer> vocab, List<AddedToken> addedTokens,
            UnaryOperator<String> normalizer, PreTokenizer preTokenizer, TokenDecoder decoder, int[] prefix,
            int[] suffix) {
        this.model = model;
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        this.decoder = decoder;
        this.prefix = prefix.clone();
        this.suffix = suffix.clone();

        int size = 0;
        for (int id : vocab.values()) {
            size = Math.max(size, id + 1);
        }
        for (AddedToken token : addedTokens) {
            size = Math.max(size, token.id() + 1);
        }
        tokens = new String[size];
        added = new boolean[size];
        special = new boolean[size];
        vocab.forEach((token, id) -> tokens[id] = token);
        Map<AddedToken, String> rawPatterns = new HashMap<>();
        Map<AddedToken, String> normalizedPatterns = new HashMap<>();
        for (AddedToken token : addedTokens) {
            tokens[token.id()] = token.content();
            added[token.id()] = true;
            special[token.id()] = token.special();
            addedIds.put(token.content(), token.id());
            if (token.normalized()) {
                normalizedPatterns.put(token, normalizer.apply(token.content()));
            } else {
                rawPatterns.put(token, token.content());
            }
        }
        rawAdded = new AddedTokenMatcher(rawPatterns);
        normalizedAdded = new AddedTokenMatcher(normalizedPatterns);
        tokenBytes = new byte[size][];
        for (int id = 0; id < size; id++) {
            if (tokens[id] != null) {
                tokenBytes[id] = added[id] ? tokens[id].getBytes(StandardCharsets.UTF_8) : decoder.bytes(tokens[id], false);
            }
        }
    }

    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
        IntList ids = new IntList(text.length() / 3 + prefix.length + suffix.length);
        if (addSpecialTokens) {
            ids.addAll(prefix);
        }
        PreTokenizer.Sink words = (word, atStart) -> {
            if (!word.isEmpty()) {
                model.tokenize(word, ids);
            }
        };
        for (Segment segment : rawAdded.split(text)) {
            if (segment.tokenId() >= 0) {
                ids.add(segment.tokenId());
                continue;
            }
            for (Segment piece : normalizedAdded.split(normalizer.apply(segment.text()))) {
                if (piece.tokenId() >= 0) {
                    ids.add(piece.tokenId());
                } else {
                    preTokenizer.split(piece.text(), segment.start() == 0 && piece.start() == 0, words);
                }
            }
        }
        if (addSpecialTokens) {
            ids.addAll(suffix);
        }
        return ids.toArray();
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        StreamDecoder stream = newStreamDecoder(skipSpecialTokens);
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            text.append(stream.push(id));
        }
        return text.append(stream.flush()).toString();
    }

    @Override
    public StreamDecoder newStreamDecoder(boolean skipSpecialTokens) {
        return new Utf8StreamDecoder(skipSpecialTokens);
    }

    @Override
    public int vocabSize() {
        return tokens.length;
    }

    @Override
    public OptionalInt tokenId(String token) {
        Integer id = addedIds.get(token);
        if (id == null) {
            id = model.id(token);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * Collects the bytes of decoded tokens and hands out the longest prefix that does not end
     * inside a multi-byte character.
     */
    private final class Utf8StreamDecoder implements StreamDecoder {

        private final boolean skipSpecialTokens;
        private byte[] pending = new byte[16];
        private int length;
        private boolean first = true;
        private int leadingToStrip = decoder.stripCount();

        Utf8StreamDecoder(boolean skipSpecialTokens) {
            this.skipSpecialTokens = skipSpecialTokens;
        }

        @Override
        public String push(int id) {
            if (id < 0 || id >= tokens.length || tokens[id] == null) {
                throw new IllegalArgumentException("token id " + id + " is not in the vocabulary (size " + tokens.length + ")");
            }
            if (skipSpecialTokens && special[id]) {
                return "";
            }
            byte[] bytes = first && !added[id] ? decoder.bytes(tokens[id], true) : tokenBytes[id];
            first = false;
            for (byte b : bytes) {
                if (leadingToStrip > 0) {
                    if (b == decoder.stripByte()) {
                        leadingToStrip--;
                        continue;
                    }
                    leadingToStrip = 0;
                }
                if (length == pending.length) {
                    pending = Arrays.copyOf(pending, length * 2);
                }
                pending[length++] = b;
            }
            return take(completeLength(pending, length));
        }

        @Override
        public String flush() {
            return take(length);
        }

        private String take(int count) {
            String text = new String(pending, 0, count, StandardCharsets.UTF_8);
            System.arraycopy(pending, count, pending, 0, length - count);
            length -= count;
            return text;
        }
    }

    /**
     * Length of the longest prefix of {@code bytes[0..length)} that does not end in the valid
     * beginning of an unfinished multi-byte UTF-8 sequence. Invalid bytes are let through (to
     * become U+FFFD) since no later byte can complete them.
     */
    static int completeLength(byte[] bytes, int length) {
        for (int i = length - 1; i >= Math.max(0, length - 3); i--) {
            int b = bytes[i] & 0xFF;
            if ((b & 0xC0) == 0x80) {
                continue; // a continuation byte: look further back for its lead byte
            }
            int sequenceLength = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 1;
            return length - i < sequenceLength ? i : length;
        }
        return length;
    }
}
