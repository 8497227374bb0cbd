package io.flover.model.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.knuddels.jtokkit.api.EncodingType;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes GPT-2 style byte-level BPE tokenizers of any vocabulary size, for models with random
 * weights in tests. The vocabulary is a prefix of GPT-2's rank table (shipped with jtokkit as
 * {@code r50k_base}): the first N ranks of a BPE table form a valid smaller BPE vocabulary, and
 * at the full size the result is exactly GPT-2's tokenizer.
 */
public final class ByteLevelTokenizerWriter {

    /** The special token at the last id, used as both BOS and EOS as in GPT-2. */
    static final String END_OF_TEXT = "<|endoftext|>";

    private static final String RANKS_RESOURCE = "/com/knuddels/jtokkit/r50k_base.tiktoken";
    private static final ObjectMapper JSON = new ObjectMapper();

    private ByteLevelTokenizerWriter() {
    }

    /** GPT-2's vocabulary size: its 50,256 ranked tokens and {@code <|endoftext|>}. */
    static final int GPT2_VOCAB = 50_257;

    /** The id of {@code <|endoftext|>} in a tokenizer written for {@code vocabSize} ids. */
    public static int endOfTextId(int vocabSize) {
        return Math.min(vocabSize, GPT2_VOCAB) - 1;
    }

    /**
     * Writes {@code tokenizer.json} and a minimal {@code tokenizer_config.json} into
     * {@code modelDir} (created if missing). Up to GPT-2's size, ids 0..vocabSize-2 are GPT-2's first
     * tokens by rank (0..255 its single bytes) and id vocabSize-1 is the special {@code <|endoftext|>}.
     * Larger vocabularies (Llama 3 has 128,256 ids) are GPT-2's followed by reserved special tokens,
     * as Llama 3 reserves ids it does not use.
     *
     * @throws IllegalArgumentException if vocabSize is below 257
     */
    public static void write(Path modelDir, int vocabSize) throws IOException {
        List<String> ranks = gpt2Ranks();
        if (vocabSize < 257) {
            throw new IllegalArgumentException("vocabSize must be at least 257 (the 256 bytes and " + END_OF_TEXT
                    + "), not " + vocabSize);
        }
        int regular = endOfTextId(vocabSize);
        ObjectNode vocab = JSON.createObjectNode();
        Map<String, Integer> rankOf = new HashMap<>(regular * 2);
        for (int rank = 0; rank < regular; rank++) {
            vocab.put(ranks.get(rank), rank);
            rankOf.put(ranks.get(rank), rank);
        }
        vocab.put(END_OF_TEXT, regular);
        ArrayNode merges = JSON.createArrayNode();
        for (int rank = 256; rank < regular; rank++) {
            List<String> parts = bpe(ranks.get(rank), rank, rankOf);
            if (parts.size() != 2) {
                throw new IllegalStateException("GPT-2 token of rank " + rank + " does not come from merging two tokens");
            }
            merges.add(parts.get(0) + " " + parts.get(1));
        }

        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        addSpecial(added, regular, END_OF_TEXT);
        for (int id = regular + 1; id < vocabSize; id++) {
            addSpecial(added, id, "<|reserved_special_token_" + (id - regular - 1) + "|>");
        }
        root.putNull("normalizer");
        root.set("pre_tokenizer", byteLevel(false, true));
        root.set("post_processor", byteLevel(true, false));
        root.set("decoder", byteLevel(true, true));
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.set("vocab", vocab);
        model.set("merges", merges);

        Files.createDirectories(modelDir);
        JSON.writeValue(modelDir.resolve(TokenizerLoader.TOKENIZER_FILE).toFile(), root);
        writeConfig(modelDir);
    }

    /**
     * A chat template in the style of Zephyr's ({@code <|user|>} headers, turns ended by the end-of-text token), so a
     * random-weight model serves chat requests as an instruction-tuned one does.
     */
    public static final String CHAT_TEMPLATE = "{% for message in messages %}"
            + "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

    /** Writes {@code tokenizer_config.json}: the special tokens and the chat template. */
    public static void writeConfig(Path modelDir) throws IOException {
        ObjectNode config = JSON.createObjectNode();
        config.put("tokenizer_class", "GPT2Tokenizer");
        config.put("bos_token", END_OF_TEXT);
        config.put("eos_token", END_OF_TEXT);
        config.put("add_bos_token", false);
        config.put("chat_template", CHAT_TEMPLATE);
        JSON.writerWithDefaultPrettyPrinter().writeValue(modelDir.resolve(TokenizerLoader.CONFIG_FILE).toFile(), config);
    }

    private static void addSpecial(ArrayNode added, int id, String content) {
        added.addObject()
                .put("id", id)
                .put("content", content)
                .put("single_word", false)
                .put("lstrip", false)
                .put("rstrip", false)
                .put("normalized", true)
                .put("special", true);
    }

    private static ObjectNode byteLevel(boolean addPrefixSpace, boolean trimOffsets) {
        ObjectNode node = JSON.createObjectNode();
        node.put("type", "ByteLevel");
        node.put("add_prefix_space", addPrefixSpace);
        node.put("trim_offsets", trimOffsets);
        node.put("use_regex", true);
        return node;
    }

    /**
     * Runs tiktoken-style BPE over the characters of {@code token} with only the ranks below
     * {@code maxRank}: repeatedly joins the adjacent pair whose concatenation has the lowest rank.
     * For a token of a BPE table this ends in the two parts whose merge made it.
     */
    private static List<String> bpe(String token, int maxRank, Map<String, Integer> rankOf) {
        List<String> parts = new ArrayList<>(token.length());
        for (int i = 0; i < token.length(); i++) {
            parts.add(token.substring(i, i + 1));
        }
        while (parts.size() > 1) {
            int best = -1;
            int bestRank = maxRank;
            for (int i = 0; i + 1 < parts.size(); i++) {
                Integer rank = rankOf.get(parts.get(i) + parts.get(i + 1));
                if (rank != null && rank < bestRank) {
                    best = i;
                    bestRank = rank;
                }
            }
            if (best < 0) {
                break;
            }
            parts.set(best, parts.get(best) + parts.remove(best + 1));
        }
        return parts;
    }

    /** GPT-2's tokens as byte-level strings, indexed by rank, from jtokkit's base64 "token rank" lines. */
    private static List<String> gpt2Ranks() throws IOException {
        List<String> ranks = new ArrayList<>(50_256);
        try (InputStream in = EncodingType.class.getResourceAsStream(RANKS_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("jtokkit resource " + RANKS_RESOURCE + " is missing");
            }
            BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
            for (String line = reader.readLine(); line != null; line = reader.readLine()) {
                int space = line.indexOf(' ');
                if (Integer.parseInt(line.substring(space + 1)) != ranks.size()) {
                    throw new IllegalStateException(RANKS_RESOURCE + ": ranks are not consecutive at line " + (ranks.size() + 1));
                }
                ranks.add(ByteLevel.encode(Base64.getDecoder().decode(line.substring(0, space))));
            }
        }
        for (int rank = 0; rank < 256; rank++) {
            if (ranks.get(rank).length() != 1) {
                throw new IllegalStateException(RANKS_RESOURCE + ": rank " + rank + " is not a single byte");
            }
        }
        return ranks;
    }
}
