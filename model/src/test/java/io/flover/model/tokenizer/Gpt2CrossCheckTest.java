package io.flover.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestReporter;
import org.junit.jupiter.api.io.TempDir;

/** GPT-2's tokenizer as written by {@link ByteLevelTokenizerWriter}, checked against jtokkit's r50k_base. */
class Gpt2CrossCheckTest {

    private static final int GPT2_VOCAB = 50257;

    @TempDir
    static Path dir;
    private static Tokenizer gpt2;
    private static final Encoding R50K = Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE);

    @BeforeAll
    static void writeGpt2() throws IOException {
        ByteLevelTokenizerWriter.write(dir, GPT2_VOCAB);
        gpt2 = Tokenizer.load(dir);
    }

    @Test
    void idsMatchJtokkitOnTenThousandRandomStrings(TestReporter reporter) {
        List<String> texts = new RandomText(20240531L).strings(10_000);
        // encodeOrdinary: jtokkit's encode rejects special tokens instead of treating them as text.
        List<int[]> expected = texts.stream().map(text -> R50K.encodeOrdinary(text).toArray()).toList();

        long start = System.nanoTime();
        List<int[]> actual = new ArrayList<>(texts.size());
        for (String text : texts) {
            actual.add(gpt2.encode(text, true));
        }
        long encodeMillis = (System.nanoTime() - start) / 1_000_000;

        for (int i = 0; i < texts.size(); i++) {
            String text = texts.get(i);
            assertArrayEquals(expected.get(i), actual.get(i), () -> "ids of " + quote(text));
            assertEquals(text, gpt2.decode(actual.get(i), false), () -> "round trip of " + quote(text));
        }
        reporter.publishEntry("encode 10,000 strings (ms)", String.valueOf(encodeMillis));
        assertTrue(encodeMillis < 2_000, "encoding 10,000 strings took " + encodeMillis + " ms");
    }

    @Test
    void knownIds() {
        assertArrayEquals(new int[] {15496, 995}, gpt2.encode("Hello world", false));
        assertArrayEquals(new int[] {15496, 50256, 995}, gpt2.encode("Hello<|endoftext|> world", false));
        assertArrayEquals(new int[] {15496, 995}, gpt2.encode("Hello world", true), "GPT-2 adds no BOS");
    }

    @Test
    void vocabularyAndSpecialToken() {
        assertEquals(GPT2_VOCAB, gpt2.vocabSize());
        assertEquals(OptionalInt.of(50256), gpt2.tokenId("<|endoftext|>"));
        assertEquals(OptionalInt.of(15496), gpt2.tokenId("Hello"));
        assertEquals(OptionalInt.of(995), gpt2.tokenId("Ġworld"));
        assertEquals(OptionalInt.empty(), gpt2.tokenId("no such token"));
        assertEquals("Hello world", gpt2.decode(new int[] {15496, 50256, 995}, true));
        assertEquals("Hello<|endoftext|> world", gpt2.decode(new int[] {15496, 50256, 995}, false));
        assertThrows(IllegalArgumentException.class, () -> gpt2.decode(new int[] {GPT2_VOCAB}, false));
        assertThrows(IllegalArgumentException.class, () -> gpt2.decode(new int[] {-1}, false));
    }

    @Test
    void smallerVocabulariesArePrefixesOfGpt2(@TempDir Path small) throws IOException {
        ByteLevelTokenizerWriter.write(small, 300);
        Tokenizer tokenizer = Tokenizer.load(small);
        assertEquals(300, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(299), tokenizer.tokenId("<|endoftext|>"));
        for (String text : new RandomText(7).strings(300)) {
            int[] ids = tokenizer.encode(text, false);
            assertTrue(ids.length > 0 || text.isEmpty());
            for (int id : ids) {
                assertTrue(id < 299, () -> "id " + id + " in " + quote(text));
            }
            assertEquals(text, tokenizer.decode(ids, false));
        }
        // Only merges of ranks below 299 apply: "the" is rank 1169 in GPT-2, here it stays in pieces.
        assertEquals(OptionalInt.empty(), tokenizer.tokenId("the"));
    }

    @Test
    void smallestVocabularyIsBytesPlusEndOfText(@TempDir Path bytesOnly) throws IOException {
        ByteLevelTokenizerWriter.write(bytesOnly, 257);
        Tokenizer tokenizer = Tokenizer.load(bytesOnly);
        assertEquals(257, tokenizer.vocabSize());
        assertEquals(5, tokenizer.encode("Hello", false).length);
        assertEquals("Hello", tokenizer.decode(tokenizer.encode("Hello", false), false));
    }

    @Test
    void rejectsVocabulariesWithoutAllBytes(@TempDir Path unused) {
        assertThrows(IllegalArgumentException.class, () -> ByteLevelTokenizerWriter.write(unused, 256));
    }

    /** Llama 3's vocabulary size: GPT-2's tokens, then reserved specials that text never produces. */
    @Test
    void largerVocabulariesEndInReservedSpecialTokens(@TempDir Path dir) throws IOException {
        ByteLevelTokenizerWriter.write(dir, 128_256);
        Tokenizer tokenizer = Tokenizer.load(dir);
        assertEquals(128_256, tokenizer.vocabSize());
        assertEquals(GPT2_VOCAB - 1, ByteLevelTokenizerWriter.endOfTextId(128_256));
        assertEquals(GPT2_VOCAB - 1, tokenizer.tokenId("<|endoftext|>").orElseThrow());
        assertArrayEquals(new int[] {15496, 995}, tokenizer.encode("Hello world", false));
        assertEquals("", tokenizer.decode(new int[] {128_255, GPT2_VOCAB}, true));
    }

    static String quote(String text) {
        StringBuilder quoted = new StringBuilder("\"");
        text.codePoints().forEach(c -> quoted.append(c < 0x20 || c == 0x7F ? String.format("\\u%04X", c) : Character.toString(c)));
        return quoted.append('"').toString();
    }
}
