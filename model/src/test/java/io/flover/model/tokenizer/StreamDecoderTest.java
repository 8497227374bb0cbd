package io.flover.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StreamDecoderTest {

    private static final String MIXED = "Hello 👋 world! 你好，世界。東京タワー 👨‍👩‍👧‍👦 🇯🇵 naïve café 😀😀 한국어 🧑🏿‍🚀!";

    @TempDir
    static Path gpt2Dir;
    @TempDir
    static Path sentencePieceDir;
    private static Tokenizer gpt2;
    private static Tokenizer sentencePiece;

    @BeforeAll
    static void load() throws IOException {
        ByteLevelTokenizerWriter.write(gpt2Dir, 50257);
        gpt2 = Tokenizer.load(gpt2Dir);
        SentencePieceTokenizerTest.copyResources(sentencePieceDir);
        sentencePiece = Tokenizer.load(sentencePieceDir);
    }

    /** Pushes ids one by one, checking every delta is whole characters, and returns the deltas then the flush. */
    private static List<String> stream(Tokenizer tokenizer, int[] ids, boolean skipSpecialTokens) {
        StreamDecoder decoder = tokenizer.newStreamDecoder(skipSpecialTokens);
        List<String> deltas = new ArrayList<>();
        for (int id : ids) {
            String delta = decoder.push(id);
            assertFalse(delta.contains("\uFFFD"), () -> "delta " + Gpt2CrossCheckTest.quote(delta));
            assertTrue(delta.isEmpty() || !Character.isLowSurrogate(delta.charAt(0)), "delta starts with a low surrogate");
            assertTrue(delta.isEmpty() || !Character.isHighSurrogate(delta.charAt(delta.length() - 1)),
                    "delta ends with a high surrogate");
            deltas.add(delta);
        }
        deltas.add(decoder.flush());
        return deltas;
    }

    @Test
    void byteLevelEmojiAndCjkSplitAcrossTokens() {
        int[] ids = gpt2.encode(MIXED, false);
        List<String> deltas = stream(gpt2, ids, false);
        assertEquals(MIXED, String.join("", deltas));
        assertTrue(deltas.contains(""), "some character should span several tokens");
        assertEquals("", deltas.getLast(), "nothing left to flush");
    }

    @Test
    void byteLevelRandomTexts() {
        for (String text : new RandomText(11).strings(1_000)) {
            assertEquals(text, String.join("", stream(gpt2, gpt2.encode(text, false), false)));
        }
    }

    @Test
    void byteFallbackEmojiArrivesWhole() {
        int[] ids = sentencePiece.encode("Hi😀 Hé", true);
        assertArrayEquals(new int[] {1, 276, 272, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80, 276, 3 + 0xC3, 3 + 0xA9}, ids);
        // BOS is skipped, the first piece loses the space its ▁ stands for.
        assertEquals(List.of("", "H", "i", "", "", "", "😀", " H", "", "é", ""), stream(sentencePiece, ids, true));
        assertEquals("<s> Hi😀 Hé", String.join("", stream(sentencePiece, ids, false)));
        assertEquals(MIXED, String.join("", stream(sentencePiece, sentencePiece.encode(MIXED, false), false)));
    }

    @Test
    void flushGivesReplacementForAnUnfinishedCharacter() {
        StreamDecoder decoder = sentencePiece.newStreamDecoder(false);
        assertEquals("H", decoder.push(276));
        assertEquals("", decoder.push(3 + 0xF0));
        assertEquals("", decoder.push(3 + 0x9F));
        assertEquals("\uFFFD", decoder.flush());
        assertEquals("", decoder.flush());
        // After the flush the stream goes on; a byte that cannot start a character is let through at once.
        assertEquals("i\uFFFD", decoder.push(272) + decoder.push(3 + 0x80));
    }

    @Test
    void rejectsUnknownIds() {
        StreamDecoder decoder = gpt2.newStreamDecoder(false);
        assertThrows(IllegalArgumentException.class, () -> decoder.push(gpt2.vocabSize()));
    }

    @Test
    void completeLength() {
        byte[] euro = "a€".getBytes(java.nio.charset.StandardCharsets.UTF_8); // 61 E2 82 AC
        assertEquals(1, BpeTokenizer.completeLength(euro, 2));
        assertEquals(1, BpeTokenizer.completeLength(euro, 3));
        assertEquals(4, BpeTokenizer.completeLength(euro, 4));
        assertEquals(2, BpeTokenizer.completeLength(new byte[] {(byte) 0xE2, 0x41}, 2), "a lead byte cut short by ASCII is done");
        assertEquals(3, BpeTokenizer.completeLength(new byte[] {(byte) 0x80, (byte) 0x80, (byte) 0x80}, 3));
        assertEquals(1, BpeTokenizer.completeLength(new byte[] {(byte) 0xFF}, 1));
    }
}
