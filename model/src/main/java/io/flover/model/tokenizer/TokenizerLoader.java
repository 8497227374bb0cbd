package io.flover.model.tokenizer;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.tokenizer.PreTokenizer.PrependScheme;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import java.util.stream.IntStream;

/** Reads tokenizer.json and tokenizer_config.json into a {@link BpeTokenizer}. */
final class TokenizerLoader {

    static final String TOKENIZER_FILE = "tokenizer.json";
    static final String CONFIG_FILE = "tokenizer_config.json";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SUPPORTED_MODELS = "BPE, either byte-level (GPT-2, Llama 3, Qwen2) or "
            + "SentencePiece-style with byte fallback (Llama 2, Mistral)";

    /** The tokenizer.json being read, for error messages. */
    private final Path file;

    private TokenizerLoader(Path file) {
        this.file = file;
    }

    static Tokenizer load(Path modelDir) throws IOException {
        Path tokenizerFile = modelDir.resolve(TOKENIZER_FILE);
        if (!Files.isRegularFile(tokenizerFile)) {
            throw new NoSuchFileException(tokenizerFile.toString(), null, "not found");
        }
        JsonNode root = readJson(tokenizerFile);
        Path configFile = modelDir.resolve(CONFIG_FILE);
        JsonNode config = Files.isRegularFile(configFile) ? readJson(configFile) : null;
        return new TokenizerLoader(tokenizerFile).build(root, configFile, config);
    }

    private static JsonNode readJson(Path file) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            String where = at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr();
            throw new IOException(file + ": malformed JSON" + where + ": " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IOException(file + ": not a JSON object");
        }
        return root;
    }

    private BpeTokenizer build(JsonNode root, Path configFile, JsonNode config) throws IOException {
        JsonNode modelNode = root.path("model");
        if (!modelNode.isObject()) {
            throw invalid("no \"model\" object; supported: " + SUPPORTED_MODELS);
        }
        // Files written by old versions of tokenizers leave out the type of a BPE model.
        String type = modelNode.path("type").asText(modelNode.has("merges") ? "BPE" : "(none)");
        if (!type.equals("BPE")) {
            throw invalid("model type \"" + type + "\" is not supported; supported: " + SUPPORTED_MODELS);
        }
        Map<String, Integer> vocab = vocab(modelNode.path("vocab"));
        BpeModel model = bpeModel(modelNode, vocab);
        List<AddedToken> addedTokens = addedTokens(root.path("added_tokens"));

        UnaryOperator<String> normalizer = normalizer(root.path("normalizer"));
        PreTokenizer preTokenizer = preTokenizer(root.path("pre_tokenizer"));
        TokenDecoder decoder = decoder(root.path("decoder"));
        int[][] template = postProcessor(root.path("post_processor"));
        if (config != null) {
            Map<String, Integer> addedIds = new HashMap<>();
            addedTokens.forEach(token -> addedIds.put(token.content(), token.id()));
            Function<String, Integer> idOf = token -> addedIds.getOrDefault(token, vocab.get(token));
            template = applyConfig(configFile, config, template, idOf);
        }
        return new BpeTokenizer(model, vocab, addedTokens, normalizer, preTokenizer, decoder, template[0], template[1]);
    }

    private Map<String, Integer> vocab(JsonNode node) throws IOException {
        if (!node.isObject()) {
            throw invalid("model.vocab is missing or not an object");
        }
        Map<String, Integer> vocab = new HashMap<>(node.size() * 2);
        for (Map.Entry<String, JsonNode> entry : node.properties()) {
            JsonNode id = entry.getValue();
            if (!id.canConvertToInt() || id.intValue() < 0) {
                throw invalid("model.vocab id of \"" + entry.getKey() + "\" is not a non-negative integer: " + id);
            }
            vocab.put(entry.getKey(), id.intValue());
        }
        return vocab;
    }

    private BpeModel bpeModel(JsonNode node, Map<String, Integer> vocab) throws IOException {
        if (node.path("dropout").asDouble(0) != 0) {
            throw invalid("model.dropout is set; BPE dropout (a training-time regularizer) is not supported");
        }
        for (String affix : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            if (!node.path(affix).asText("").isEmpty()) {
                throw invalid("model." + affix + " is not supported");
            }
        }
        JsonNode mergesNode = node.path("merges");
        if (!mergesNode.isArray()) {
            throw invalid("model.merges is missing or not an array");
        }
        List<BpeModel.Merge> merges = new ArrayList<>(mergesNode.size());
        for (int i = 0; i < mergesNode.size(); i++) {
            JsonNode merge = mergesNode.get(i);
            // Merges come as "left right" strings or, when a token contains a space, as pairs.
            String[] parts = merge.isTextual() ? merge.textValue().split(" ", -1)
                    : merge.isArray() && merge.size() == 2 && merge.get(0).isTextual() && merge.get(1).isTextual()
                            ? new String[] {merge.get(0).textValue(), merge.get(1).textValue()}
                            : new String[0];
            if (parts.length != 2) {
                throw invalid("model.merges[" + i + "] is neither \"left right\" nor [\"left\", \"right\"]: " + merge);
            }
            merges.add(new BpeModel.Merge(parts[0], parts[1]));
        }
        JsonNode unk = node.path("unk_token");
        try {
            return new BpeModel(vocab, merges, unk.isTextual() ? unk.textValue() : null,
                    node.path("fuse_unk").asBoolean(false), node.path("byte_fallback").asBoolean(false),
                    node.path("ignore_merges").asBoolean(false));
        } catch (IllegalArgumentException e) {
            throw invalid("model: " + e.getMessage());
        }
    }

    private List<AddedToken> addedTokens(JsonNode node) throws IOException {
        List<AddedToken> tokens = new ArrayList<>();
        for (int i = 0; i < node.size(); i++) {
            JsonNode token = node.get(i);
            if (!token.path("id").canConvertToInt() || token.path("id").intValue() < 0
                    || !token.path("content").isTextual()) {
                throw invalid("added_tokens[" + i + "] needs a non-negative \"id\" and a string \"content\"");
            }
            boolean special = token.path("special").asBoolean(false);
            tokens.add(new AddedToken(token.get("id").intValue(), token.get("content").textValue(), special,
                    token.path("single_word").asBoolean(false), token.path("lstrip").asBoolean(false),
                    token.path("rstrip").asBoolean(false), token.path("normalized").asBoolean(!special)));
        }
        return tokens;
    }

    private UnaryOperator<String> normalizer(JsonNode node) throws IOException {
        if (isAbsent(node)) {
            return UnaryOperator.identity();
        }
        String type = type(node, "normalizer");
        return switch (type) {
            case "Sequence" -> {
                List<UnaryOperator<String>> steps = new ArrayList<>();
                for (JsonNode step : node.path("normalizers")) {
                    steps.add(normalizer(step));
                }
                yield text -> {
                    for (UnaryOperator<String> step : steps) {
                        text = step.apply(text);
                    }
                    return text;
                };
            }
            case "Prepend" -> {
                String prepend = requireText(node, "prepend", "normalizer Prepend");
                yield text -> text.isEmpty() ? text : prepend + text;
            }
            case "Replace" -> replace(node, "normalizer Replace");
            case "NFC", "NFD", "NFKC", "NFKD" -> {
                Normalizer.Form form = Normalizer.Form.valueOf(type);
                yield text -> Normalizer.normalize(text, form);
            }
            default -> throw unsupported("normalizer", type, "Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD");
        };
    }

    /** A {@code Replace} of tokenizers: every match of a literal or regex pattern becomes {@code content}. */
    private UnaryOperator<String> replace(JsonNode node, String what) throws IOException {
        String content = requireText(node, "content", what);
        JsonNode pattern = node.path("pattern");
        if (pattern.path("String").isTextual()) {
            String literal = pattern.get("String").textValue();
            return text -> text.replace(literal, content);
        }
        Pattern regex = regex(pattern, what);
        String replacement = Matcher.quoteReplacement(content);
        return text -> regex.matcher(text).replaceAll(replacement);
    }

    private PreTokenizer preTokenizer(JsonNode node) throws IOException {
        if (isAbsent(node)) {
            return (text, atStart, out) -> out.accept(text, atStart);
        }
        String type = type(node, "pre_tokenizer");
        return switch (type) {
            case "Sequence" -> {
                List<PreTokenizer> steps = new ArrayList<>();
                for (JsonNode step : node.path("pretokenizers")) {
                    steps.add(preTokenizer(step));
                }
                yield PreTokenizer.sequence(steps);
            }
            case "ByteLevel" -> PreTokenizer.byteLevel(node.path("add_prefix_space").asBoolean(true),
                    node.path("use_regex").asBoolean(true));
            case "Split" -> {
                String behavior = node.path("behavior").asText("");
                if (!behavior.equals("Isolated") || node.path("invert").asBoolean(false)) {
                    throw invalid("pre_tokenizer Split with behavior \"" + behavior + "\" and invert "
                            + node.path("invert").asBoolean(false) + " is not supported; supported: behavior Isolated, invert false");
                }
                JsonNode pattern = node.path("pattern");
                yield PreTokenizer.isolate(pattern.path("String").isTextual()
                        ? Pattern.compile(Pattern.quote(pattern.get("String").textValue()))
                        : regex(pattern, "pre_tokenizer Split"));
            }
            case "Metaspace" -> PreTokenizer.metaspace(replacement(node, "pre_tokenizer Metaspace"),
                    prependScheme(node), node.path("split").asBoolean(true));
            default -> throw unsupported("pre_tokenizer", type, "Sequence, ByteLevel, Split, Metaspace");
        };
    }

    private TokenDecoder decoder(JsonNode node) throws IOException {
        if (isAbsent(node)) {
            throw invalid("no decoder; supported: ByteLevel, Metaspace, or a Sequence of Replace, Metaspace, "
                    + "ByteFallback, Fuse and Strip");
        }
        List<JsonNode> steps = new ArrayList<>();
        if (type(node, "decoder").equals("Sequence")) {
            node.path("decoders").forEach(steps::add);
        } else {
            steps.add(node);
        }
        List<TokenDecoder.Edit> edits = new ArrayList<>();
        boolean byteLevel = false;
        boolean byteFallback = false;
        boolean fused = false;
        byte stripByte = 0;
        int stripCount = 0;
        for (JsonNode step : steps) {
            String type = type(step, "decoder");
            // String edits must come before tokens turn into bytes; after Fuse only a leading Strip is possible.
            boolean editable = !byteLevel && !byteFallback && !fused;
            switch (type) {
                case "Replace" -> {
                    requireOrder(editable, type);
                    UnaryOperator<String> replace = replace(step, "decoder Replace");
                    edits.add((token, first) -> replace.apply(token));
                }
                case "Metaspace" -> {
                    requireOrder(editable, type);
                    String replacement = String.valueOf(replacement(step, "decoder Metaspace"));
                    boolean dropFirst = prependScheme(step) != PrependScheme.NEVER;
                    // The space that the pre-tokenizer put in front of the text is dropped again.
                    edits.add((token, first) -> token.replace(replacement, first && dropFirst ? "" : " "));
                }
                case "ByteLevel" -> {
                    requireOrder(!fused, type);
                    byteLevel = true;
                    fused = true; // tokenizers' ByteLevel decoder also joins the tokens
                }
                case "ByteFallback" -> {
                    requireOrder(!fused, type);
                    byteFallback = true;
                }
                case "Fuse" -> fused = true;
                case "Strip" -> {
                    String content = requireText(step, "content", "decoder Strip");
                    requireOrder(fused, "Strip before Fuse");
                    if (content.length() != 1 || content.charAt(0) > 0x7F || step.path("stop").asInt(0) != 0) {
                        throw invalid("decoder Strip is only supported for one ASCII character at the start (stop 0): " + step);
                    }
                    stripByte = (byte) content.charAt(0);
                    stripCount = step.path("start").asInt(0);
                }
                default -> throw unsupported("decoder", type, "ByteLevel, Metaspace, Sequence, Replace, ByteFallback, Fuse, Strip");
            }
        }
        return new TokenDecoder(List.copyOf(edits), byteLevel, byteFallback, stripByte, stripCount);
    }

    private void requireOrder(boolean ok, String step) throws IOException {
        if (!ok) {
            throw invalid("decoder " + step + " at this place of the Sequence is not supported");
        }
    }

    /**
     * The ids a post-processor puts before and after the text's (single sequences only).
     *
     * @return {prefix, suffix}
     */
    private int[][] postProcessor(JsonNode node) throws IOException {
        int[][] none = {new int[0], new int[0]};
        if (isAbsent(node)) {
            return none;
        }
        String type = type(node, "post_processor");
        return switch (type) {
            case "ByteLevel" -> none; // only adjusts offsets
            case "Sequence" -> {
                int[][] result = none;
                for (JsonNode step : node.path("processors")) {
                    int[][] inner = postProcessor(step);
                    result = new int[][] {concat(inner[0], result[0]), concat(result[1], inner[1])};
                }
                yield result;
            }
            case "TemplateProcessing" -> template(node);
            case "RobertaProcessing", "BertProcessing" ->
                    new int[][] {{templateTokenId(node, "cls")}, {templateTokenId(node, "sep")}};
            default -> throw unsupported("post_processor", type,
                    "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence");
        };
    }

    private int[][] template(JsonNode node) throws IOException {
        IntStream.Builder prefix = IntStream.builder();
        IntStream.Builder suffix = IntStream.builder();
        boolean seenSequence = false;
        for (JsonNode piece : node.path("single")) {
            if (piece.path("Sequence").path("id").asText("").equals("A") && !seenSequence) {
                seenSequence = true;
            } else if (piece.path("SpecialToken").path("id").isTextual()) {
                String name = piece.get("SpecialToken").get("id").textValue();
                JsonNode tokenIds = node.path("special_tokens").path(name).path("ids");
                if (!tokenIds.isArray()) {
                    throw invalid("post_processor template token \"" + name + "\" has no ids in special_tokens");
                }
                for (JsonNode id : tokenIds) {
                    (seenSequence ? suffix : prefix).add(id.asInt());
                }
            } else {
                throw invalid("post_processor TemplateProcessing single template piece is not supported: " + piece);
            }
        }
        if (!seenSequence) {
            throw invalid("post_processor TemplateProcessing single template has no $A");
        }
        return new int[][] {prefix.build().toArray(), suffix.build().toArray()};
    }

    /** The id of a RobertaProcessing / BertProcessing {@code [token, id]} pair. */
    private int templateTokenId(JsonNode node, String field) throws IOException {
        JsonNode token = node.path(field);
        if (token.size() != 2 || !token.get(1).canConvertToInt()) {
            throw invalid("post_processor " + field + " is not a [token, id] pair: " + token);
        }
        return token.get(1).intValue();
    }

    /** Adds BOS and EOS as tokenizer_config.json asks, unless the post-processor already does. */
    private static int[][] applyConfig(Path configFile, JsonNode config, int[][] template,
            Function<String, Integer> idOf) throws IOException {
        int[] prefix = template[0];
        int[] suffix = template[1];
        if (config.path("add_bos_token").asBoolean(false)) {
            int bos = configTokenId(configFile, config, "bos_token", idOf);
            if (IntStream.of(prefix).noneMatch(id -> id == bos)) {
                prefix = concat(new int[] {bos}, prefix);
            }
        }
        if (config.path("add_eos_token").asBoolean(false)) {
            int eos = configTokenId(configFile, config, "eos_token", idOf);
            if (IntStream.of(suffix).noneMatch(id -> id == eos)) {
                suffix = concat(suffix, new int[] {eos});
            }
        }
        return new int[][] {prefix, suffix};
    }

    /** A token named in tokenizer_config.json, either as a string or as an object with "content". */
    private static int configTokenId(Path configFile, JsonNode config, String field, Function<String, Integer> idOf)
            throws IOException {
        JsonNode token = config.path(field);
        String content = token.isTextual() ? token.textValue() : token.path("content").asText(null);
        if (content == null) {
            throw new IOException(configFile + ": add_" + field + " is true but " + field + " is missing");
        }
        Integer id = idOf.apply(content);
        if (id == null) {
            throw new IOException(configFile + ": " + field + " \"" + content + "\" is neither in the vocabulary nor an added token");
        }
        return id;
    }

    private char replacement(JsonNode node, String what) throws IOException {
        String replacement = requireText(node, "replacement", what);
        if (replacement.length() != 1) {
            throw invalid(what + " replacement must be one character: \"" + replacement + "\"");
        }
        return replacement.charAt(0);
    }

    /** Metaspace's prepend_scheme, or its older add_prefix_space (where false means never). */
    private PrependScheme prependScheme(JsonNode node) throws IOException {
        if (!node.path("add_prefix_space").asBoolean(true)) {
            return PrependScheme.NEVER;
        }
        String scheme = node.path("prepend_scheme").asText("always");
        try {
            return PrependScheme.valueOf(scheme.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw invalid("Metaspace prepend_scheme \"" + scheme + "\" is not one of always, first, never");
        }
    }

    private Pattern regex(JsonNode pattern, String what) throws IOException {
        if (!pattern.path("Regex").isTextual()) {
            throw invalid(what + " pattern is neither {\"String\": ...} nor {\"Regex\": ...}: " + pattern);
        }
        try {
            return PreTokenizer.compile(pattern.get("Regex").textValue());
        } catch (PatternSyntaxException e) {
            throw invalid(what + " regex does not compile in Java: " + e.getMessage());
        }
    }

    private String requireText(JsonNode node, String field, String what) throws IOException {
        if (!node.path(field).isTextual()) {
            throw invalid(what + " has no string \"" + field + "\"");
        }
        return node.get(field).textValue();
    }

    private String type(JsonNode node, String what) throws IOException {
        if (!node.path("type").isTextual()) {
            throw invalid(what + " has no \"type\": " + node);
        }
        return node.get("type").textValue();
    }

    private static boolean isAbsent(JsonNode node) {
        return node.isMissingNode() || node.isNull();
    }

    private static int[] concat(int[] a, int[] b) {
        return IntStream.concat(IntStream.of(a), IntStream.of(b)).toArray();
    }

    private IOException unsupported(String component, String type, String supported) {
        return invalid(component + " type \"" + type + "\" is not supported; supported: " + supported);
    }

    private IOException invalid(String what) {
        return new IOException(file + ": " + what);
    }
}
