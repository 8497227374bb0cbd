package io.flover.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The hand-written Llama-2-style tokenizer in test resources: Prepend("▁") and Replace(" ", "▁")
 * normalizers, no pre-tokenizer, byte fallback, and BOS from tokenizer_config.json.
 *
 * <p>Ids: 0 {@code <unk>}, 1 {@code <s>}, 2 {@code </s>}, 3 + b for {@code <0xbb>}, then
 * 259 ▁, 260 e, 261 l, 262 o, 263 H, 267 !, 272 i, 274 ll, 275 ell, 276 ▁H, 278 ▁Hello,
 * 283 ▁world, 287 ▁is, 289 ▁a, 290 ▁this. Merges by rank: l+l, e+ll, ▁+H, ▁H+ell, ▁Hell+o, o+r,
 * ▁+w, ▁w+or, ▁wor+l, ▁worl+d, t+h, ▁+th, i+s, ▁+is, ▁th+is, ▁+▁, ▁+a.
 */
class SentencePieceTokenizerTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BOS = 1;
    private static final int EOS = 2;

    @TempDir
    static Path dir;
    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() throws IOException {
        copyResources(dir);
        tokenizer = Tokenizer.load(dir);
    }

    static void copyResources(Path target) throws IOException {
        for (String name : new String[] {"tokenizer.json", "tokenizer_config.json"}) {
            try (InputStream in = SentencePieceTokenizerTest.class.getResourceAsStream("/tokenizer/sentencepiece/" + name)) {
                Files.copy(in, target.resolve(name));
            }
        }
    }

    /** A copy of the resources in {@code target} with tokenizer.json edited. */
    private static Tokenizer variant(Path target, Consumer<ObjectNode> edit) throws IOException {
        copyResources(target);
        ObjectNode root = (ObjectNode) JSON.readTree(target.resolve("tokenizer.json").toFile());
        edit.accept(root);
        JSON.writeValue(target.resolve("tokenizer.json").toFile(), root);
        return Tokenizer.load(target);
    }

    @Test
    void mergesByRank() {
        // ▁Hello▁world: l+l, e+ll, ▁+H, ▁H+ell, ▁Hell+o, then o+r, ▁+w, ▁w+or, ▁wor+l, ▁worl+d.
        assertArrayEquals(new int[] {278, 283}, tokenizer.encode("Hello world", false));
        // ▁this▁is▁a▁world: ▁+is (rank 13) comes before ▁th+is (rank 14), so the second "is" keeps its ▁.
        assertArrayEquals(new int[] {290, 287, 289, 283}, tokenizer.encode("this is a world", false));
        // ▁Hello▁▁world: ▁+w (rank 6) is taken before ▁+▁ (rank 15) can be.
        assertArrayEquals(new int[] {278, 259, 283}, tokenizer.encode("Hello  world", false));
        // A leading space gives ▁▁Hello: the prefix is prepended even so.
        assertArrayEquals(new int[] {259, 278}, tokenizer.encode(" Hello", false));
    }

    @Test
    void unknownCharactersFallBackToBytes() {
        // é is C3 A9 and not in the vocabulary.
        assertArrayEquals(new int[] {276, 3 + 0xC3, 3 + 0xA9, 267}, tokenizer.encode("Hé!", false));
        // 😀 is F0 9F 98 80.
        assertArrayEquals(new int[] {276, 272, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80}, tokenizer.encode("Hi😀", false));
        assertEquals("Hé!", tokenizer.decode(new int[] {276, 3 + 0xC3, 3 + 0xA9, 267}, false));
        assertEquals("Hi😀", tokenizer.decode(new int[] {276, 272, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80}, false));
        // A lone lead byte cannot be completed.
        assertEquals("H\uFFFD", tokenizer.decode(new int[] {276, 3 + 0xF0}, false));
    }

    @Test
    void decodeStripsThePrefixSpace() {
        assertEquals("Hello world", tokenizer.decode(new int[] {278, 283}, false));
        assertEquals("Hello  world", tokenizer.decode(new int[] {278, 259, 283}, false));
        assertEquals(" Hello", tokenizer.decode(new int[] {259, 278}, false));
        assertEquals("world", tokenizer.decode(new int[] {BOS, 283}, true));
        assertEquals("<s> world", tokenizer.decode(new int[] {BOS, 283}, false));
    }

    @Test
    void bosFromTokenizerConfig() {
        assertArrayEquals(new int[] {BOS, 278, 283}, tokenizer.encode("Hello world", true));
        assertArrayEquals(new int[] {BOS}, tokenizer.encode("", true));
        assertArrayEquals(new int[0], tokenizer.encode("", false));
    }

    @Test
    void bosIsNotAddedTwiceWhenThePostProcessorAddsIt(@TempDir Path target) throws IOException {
        Tokenizer withTemplate = variant(target, root -> {
            ObjectNode template = root.putObject("post_processor").put("type", "TemplateProcessing");
            template.putArray("single").add(JSON.createObjectNode().set("SpecialToken",
                    JSON.createObjectNode().put("id", "<s>").put("type_id", 0)))
                    .add(JSON.createObjectNode().set("Sequence", JSON.createObjectNode().put("id", "A").put("type_id", 0)))
                    .add(JSON.createObjectNode().set("SpecialToken",
                            JSON.createObjectNode().put("id", "</s>").put("type_id", 0)));
            ObjectNode tokens = template.putObject("special_tokens");
            tokens.putObject("<s>").put("id", "<s>").putArray("ids").add(BOS);
            tokens.putObject("</s>").put("id", "</s>").putArray("ids").add(EOS);
        });
        assertArrayEquals(new int[] {BOS, 278, 283, EOS}, withTemplate.encode("Hello world", true));
        assertArrayEquals(new int[] {278, 283}, withTemplate.encode("Hello world", false));
    }

    @Test
    void specialTokensInText() {
        // Each text piece between added tokens is normalized on its own, so "Hello" gets its ▁ too.
        assertArrayEquals(new int[] {BOS, 278, EOS}, tokenizer.encode("<s>Hello</s>", false));
        assertArrayEquals(new int[] {BOS, BOS, 278, EOS}, tokenizer.encode("<s>Hello</s>", true));
        assertEquals("Hello", tokenizer.decode(new int[] {BOS, 278, EOS}, true));
        assertEquals("<s> Hello</s>", tokenizer.decode(new int[] {BOS, 278, EOS}, false));
    }

    @Test
    void vocabulary() {
        assertEquals(291, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(278), tokenizer.tokenId("▁Hello"));
        assertEquals(OptionalInt.of(3 + 0x0A), tokenizer.tokenId("<0x0A>"));
        assertEquals(OptionalInt.of(EOS), tokenizer.tokenId("</s>"));
    }

    @Test
    void unknownTokenWithoutByteFallback(@TempDir Path target) throws IOException {
        Tokenizer noFallback = variant(target, root -> ((ObjectNode) root.get("model")).put("byte_fallback", false));
        // fuse_unk: the two unknown characters become one <unk>.
        assertArrayEquals(new int[] {276, 0, 267}, noFallback.encode("Hé€!", false));
    }

    @Test
    void metaspacePreTokenizerPrependsOnlyAtTheStart(@TempDir Path target) throws IOException {
        // Mistral-style: Metaspace with prepend_scheme "first" instead of the normalizers.
        Tokenizer metaspace = variant(target, root -> {
            root.putNull("normalizer");
            root.putObject("pre_tokenizer").put("type", "Metaspace").put("replacement", "▁")
                    .put("prepend_scheme", "first").put("split", false);
            root.putObject("decoder").put("type", "Metaspace").put("replacement", "▁")
                    .put("prepend_scheme", "first").put("split", false);
        });
        assertArrayEquals(new int[] {278, 283}, metaspace.encode("Hello world", false));
        // Text that starts with a space already has its ▁.
        assertArrayEquals(new int[] {278}, metaspace.encode(" Hello", false));
        // After an added token the text is not at the start: H, ell, o without ▁.
        assertArrayEquals(new int[] {BOS, 263, 275, 262}, metaspace.encode("<s>Hello", false));
        assertEquals("Hello world", metaspace.decode(new int[] {278, 283}, false));
    }

    @Test
    void addedTokenStripAndSingleWordOptions(@TempDir Path target) throws IOException {
        assertArrayEquals(new int[] {278, 259, EOS}, tokenizer.encode("Hello </s>", false));
        Tokenizer options = variant(target, root -> {
            for (JsonNode token : root.get("added_tokens")) {
                if (token.get("content").textValue().equals("</s>")) {
                    ((ObjectNode) token).put("lstrip", true).put("single_word", true);
                }
                if (token.get("content").textValue().equals("<s>")) {
                    ((ObjectNode) token).put("rstrip", true);
                }
            }
        });
        // lstrip takes the space before </s>, rstrip the spaces after <s>.
        assertArrayEquals(new int[] {278, EOS}, options.encode("Hello </s>", false));
        assertArrayEquals(new int[] {BOS, 278}, options.encode("<s>  Hello", false));
        // single_word: </s> right after a letter is plain text (falling back to bytes).
        assertTrue(IntStream.of(options.encode("Hello</s>", false)).noneMatch(id -> id == EOS));
    }

    @Test
    void nfcNormalizerComposesFirst(@TempDir Path target) throws IOException {
        Tokenizer nfc = variant(target, root -> {
            ArrayNode steps = (ArrayNode) root.get("normalizer").get("normalizers");
            steps.insert(0, JSON.createObjectNode().put("type", "NFC"));
        });
        // e + combining acute becomes é (C3 A9) before byte fallback.
        assertArrayEquals(new int[] {276, 3 + 0xC3, 3 + 0xA9, 267}, nfc.encode("He\u0301!", false));
        assertArrayEquals(new int[] {276, 260, 3 + 0xCC, 3 + 0x81, 267}, tokenizer.encode("He\u0301!", false));
    }

    @Test
    void ignoreMergesTakesWholeWordsFromTheVocabulary(@TempDir Path target) throws IOException {
        // "▁Hi" is in this variant's vocabulary but no merge makes it.
        Tokenizer whole = variant(target, root -> {
            ObjectNode model = (ObjectNode) root.get("model");
            model.put("ignore_merges", true);
            ((ObjectNode) model.get("vocab")).put("▁Hi", 291);
        });
        assertArrayEquals(new int[] {291}, whole.encode("Hi", false));
        assertArrayEquals(new int[] {276, 272}, tokenizer.encode("Hi", false));
        assertArrayEquals(new int[] {278, 283}, whole.encode("Hello world", false), "other words still merge");
    }
}
