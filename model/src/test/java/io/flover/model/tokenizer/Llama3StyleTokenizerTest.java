package io.flover.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.GptBytePairEncodingParams;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A tokenizer.json shaped like Llama 3's (Split regex then ByteLevel without regex, merges as
 * pairs, {@code <|begin_of_text|>} added by the post-processor) over GPT-2's ranks.
 */
class Llama3StyleTokenizerTest {

    static final String LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] SPECIAL = {
        "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    };
    private static final int BEGIN_OF_TEXT = 50257;
    private static final int START_HEADER = 50259;
    private static final int END_HEADER = 50260;
    private static final int EOT = 50261;

    @TempDir
    static Path dir;
    private static Tokenizer tokenizer;

    @BeforeAll
    static void writeLlama3Style() throws IOException {
        ByteLevelTokenizerWriter.write(dir, 50257);
        ObjectNode root = (ObjectNode) JSON.readTree(dir.resolve("tokenizer.json").toFile());

        ArrayNode added = (ArrayNode) root.get("added_tokens");
        for (int i = 0; i < SPECIAL.length; i++) {
            added.addObject().put("id", BEGIN_OF_TEXT + i).put("content", SPECIAL[i]).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        ObjectNode split = JSON.createObjectNode().put("type", "Split").put("behavior", "Isolated").put("invert", false);
        split.putObject("pattern").put("Regex", LLAMA3_PATTERN);
        ObjectNode byteLevel = JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", false)
                .put("trim_offsets", true).put("use_regex", false);
        ObjectNode preTokenizer = root.putObject("pre_tokenizer").put("type", "Sequence");
        preTokenizer.putArray("pretokenizers").add(split).add(byteLevel);

        ObjectNode template = JSON.createObjectNode().put("type", "TemplateProcessing");
        template.putArray("single").add(specialToken("<|begin_of_text|>")).add(sequence("A"));
        template.putArray("pair").add(specialToken("<|begin_of_text|>")).add(sequence("A"))
                .add(specialToken("<|begin_of_text|>")).add(sequence("B"));
        ObjectNode bos = template.putObject("special_tokens").putObject("<|begin_of_text|>");
        bos.put("id", "<|begin_of_text|>");
        bos.putArray("ids").add(BEGIN_OF_TEXT);
        bos.putArray("tokens").add("<|begin_of_text|>");
        ObjectNode postProcessor = root.putObject("post_processor").put("type", "Sequence");
        postProcessor.putArray("processors")
                .add(JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", true)
                        .put("trim_offsets", false).put("use_regex", true))
                .add(template);

        // Newer tokenizer.json files write merges as pairs.
        ArrayNode pairs = JSON.createArrayNode();
        for (JsonNode merge : root.get("model").get("merges")) {
            String[] parts = merge.textValue().split(" ");
            pairs.addArray().add(parts[0]).add(parts[1]);
        }
        ((ObjectNode) root.get("model")).set("merges", pairs);
        JSON.writeValue(dir.resolve("tokenizer.json").toFile(), root);

        // Asking for BOS here as well must not add it twice.
        JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), JSON.createObjectNode()
                .put("add_bos_token", true).put("bos_token", "<|begin_of_text|>").put("eos_token", "<|eot_id|>"));
        tokenizer = Tokenizer.load(dir);
    }

    private static ObjectNode specialToken(String id) {
        ObjectNode node = JSON.createObjectNode();
        node.putObject("SpecialToken").put("id", id).put("type_id", 0);
        return node;
    }

    private static ObjectNode sequence(String id) {
        ObjectNode node = JSON.createObjectNode();
        node.putObject("Sequence").put("id", id).put("type_id", 0);
        return node;
    }

    @Test
    void idsMatchJtokkitWithTheLlama3Pattern() throws IOException {
        Encoding reference = gpt2RanksWithLlama3Pattern();
        for (String text : new RandomText(3).strings(3_000)) {
            int[] ids = tokenizer.encode(text, false);
            assertArrayEquals(reference.encodeOrdinary(text).toArray(), ids, () -> Gpt2CrossCheckTest.quote(text));
            assertEquals(text, tokenizer.decode(ids, false));
        }
    }

    @Test
    void splitsDigitsInGroupsOfThree() {
        // GPT-2's pattern keeps " 2024" together (one token); Llama 3's splits it into " ", "202", "4".
        assertEquals(1, Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE)
                .encodeOrdinary(" 2024").size());
        IntList expected = new IntList(4);
        for (String word : List.of(" ", "202", "4")) {
            expected.addAll(tokenizer.encode(word, false));
        }
        assertArrayEquals(expected.toArray(), tokenizer.encode(" 2024", false));
    }

    @Test
    void beginOfTextOnlyWithSpecialTokens() {
        int[] plain = tokenizer.encode("Hello world", false);
        int[] withSpecial = tokenizer.encode("Hello world", true);
        assertEquals(BEGIN_OF_TEXT, withSpecial[0]);
        assertArrayEquals(plain, IntStream.of(withSpecial).skip(1).toArray());
        assertTrue(IntStream.of(plain).noneMatch(id -> id == BEGIN_OF_TEXT));
        assertEquals(1, tokenizer.encode("", true).length);
        assertEquals("Hello world", tokenizer.decode(withSpecial, true));
        assertEquals("<|begin_of_text|>Hello world", tokenizer.decode(withSpecial, false));
    }

    @Test
    void addedTokensInTextAreRecognised() {
        String chat = "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>";
        IntList expected = new IntList(16);
        expected.add(START_HEADER);
        expected.addAll(tokenizer.encode("user", false));
        expected.add(END_HEADER);
        expected.addAll(tokenizer.encode("\n\nHi there!", false));
        expected.add(EOT);
        int[] ids = tokenizer.encode(chat, false);
        assertArrayEquals(expected.toArray(), ids);
        assertEquals(chat, tokenizer.decode(ids, false));
        assertEquals("user\n\nHi there!", tokenizer.decode(ids, true));
        assertEquals(OptionalInt.of(EOT), tokenizer.tokenId("<|eot_id|>"));
        assertEquals(BEGIN_OF_TEXT + SPECIAL.length, tokenizer.vocabSize());
        // An incomplete marker is plain text.
        assertTrue(IntStream.of(tokenizer.encode("<|eot_id", false)).allMatch(id -> id < 50256));
    }

    /** jtokkit over GPT-2's ranks with Llama 3's pattern, compiled the same way. */
    private static Encoding gpt2RanksWithLlama3Pattern() throws IOException {
        Map<byte[], Integer> ranks = new HashMap<>();
        try (InputStream in = EncodingType.class.getResourceAsStream("/com/knuddels/jtokkit/r50k_base.tiktoken");
                BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII))) {
            List<String> lines = reader.lines().toList();
            for (String line : lines) {
                String[] parts = line.split(" ");
                ranks.put(Base64.getDecoder().decode(parts[0]), Integer.parseInt(parts[1]));
            }
        }
        GptBytePairEncodingParams params = new GptBytePairEncodingParams("gpt2-llama3-pattern",
                PreTokenizer.compile(LLAMA3_PATTERN), ranks, Map.of());
        return Encodings.newLazyEncodingRegistry().registerGptBytePairEncoding(params)
                .getEncoding("gpt2-llama3-pattern").orElseThrow();
    }
}
