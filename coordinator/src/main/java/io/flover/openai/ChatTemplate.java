package io.flover.openai;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import io.flover.model.InvalidFieldException;
import io.flover.model.gguf.GgufFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A model's chat template: the Jinja program that turns a conversation into the prompt the model was tuned on.
 * It comes from {@code tokenizer_config.json}'s {@code chat_template} (a string, or a list of named templates of
 * which {@code default} is taken), a GGUF model's {@code tokenizer.chat_template}, or a file given in their place,
 * and is rendered as Hugging Face renders it:
 * {@code trim_blocks} and {@code lstrip_blocks}, with {@code bos_token}, {@code eos_token},
 * {@code add_generation_prompt} and {@code raise_exception} in scope.
 */
public final class ChatTemplate {
    /** One turn of a conversation, its content already plain text. */
    public record Message(String role, String content) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    /** Far beyond any prompt; a template that loops without end stops here. */
    private static final long MAX_OUTPUT_CHARS = 16 << 20;
    /** Built on first use: a server whose model has no template never loads jinjava. */
    private static final class Engine {
        static final Jinjava JINJAVA = jinjava();
    }

    private final String source;
    private final String bosToken;
    private final String eosToken;

    public ChatTemplate(String source, String bosToken, String eosToken) {
        this.source = source;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
    }

    /**
     * The template of the model in {@code modelDir}, or of {@code override} (a file holding the template) when not
     * null; empty when the model has none.
     */
    public static Optional<ChatTemplate> load(Path modelDir, Path override) throws IOException {
        Path gguf = GgufFile.inModel(modelDir);
        if (gguf != null && !Files.isRegularFile(modelDir.resolve("tokenizer_config.json"))) {
            try (GgufFile f = GgufFile.open(gguf)) {
                String template = override != null ? Files.readString(override)
                        : f.has("tokenizer.chat_template") ? f.string("tokenizer.chat_template") : null;
                return template == null ? Optional.empty() : Optional.of(new ChatTemplate(template,
                        ggufToken(f, "tokenizer.ggml.bos_token_id"), ggufToken(f, "tokenizer.ggml.eos_token_id")));
            }
        }
        Path configFile = modelDir.resolve("tokenizer_config.json");
        JsonNode config = Files.isRegularFile(configFile) ? JSON.readTree(configFile.toFile()) : JSON.createObjectNode();
        String bos = tokenText(config.path("bos_token"));
        String eos = tokenText(config.path("eos_token"));
        if (override != null) {
            return Optional.of(new ChatTemplate(Files.readString(override), bos, eos));
        }
        JsonNode template = config.path("chat_template");
        if (template.isTextual()) {
            return Optional.of(new ChatTemplate(template.textValue(), bos, eos));
        }
        for (JsonNode named : template) {
            if ("default".equals(named.path("name").asText()) && named.path("template").isTextual()) {
                return Optional.of(new ChatTemplate(named.path("template").textValue(), bos, eos));
            }
        }
        if (template.isArray()) {
            throw new IOException(configFile + ": chat_template is a list with no template named default");
        }
        // Newer checkpoints keep the template in a file of its own.
        Path jinja = modelDir.resolve("chat_template.jinja");
        return Files.isRegularFile(jinja) ? Optional.of(new ChatTemplate(Files.readString(jinja), bos, eos)) : Optional.empty();
    }

    /**
     * The prompt for {@code messages}, ending with the assistant's header when {@code addGenerationPrompt}. A
     * conversation the template refuses ({@code raise_exception}) is an InvalidFieldException on {@code messages}.
     */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        Map<String, Object> context = new HashMap<>();
        context.put("messages", messages.stream().map(m -> Map.of("role", m.role(), "content", m.content())).toList());
        context.put("add_generation_prompt", addGenerationPrompt);
        context.put("bos_token", bosToken);
        context.put("eos_token", eosToken);
        RenderResult result = Engine.JINJAVA.renderForResult(source, context);
        for (TemplateError e : result.getErrors()) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL) {
                String why = raised(e);
                throw new InvalidFieldException("messages", why != null ? "the chat template refused the messages: " + why
                        : "the chat template failed: " + e.getMessage());
            }
        }
        return result.getOutput();
    }

    /** Called by templates as {@code raise_exception(message)} to refuse a conversation. */
    public static String raiseException(String message) {
        throw new Refusal(message);
    }

    private static String raised(TemplateError e) {
        for (Throwable t = e.getException(); t != null; t = t.getCause()) {
            if (t instanceof Refusal r) {
                return r.getMessage();
            }
        }
        return null;
    }

    private static final class Refusal extends RuntimeException {
        Refusal(String message) {
            super(message, null, false, false);
        }
    }

    /** A token given either as its text or as an object with "content", as tokenizer_config.json does both. */
    /** The text of the token whose id is at {@code key}, or "" when there is none. */
    private static String ggufToken(GgufFile f, String key) {
        long id = f.integer(key, -1);
        List<?> tokens = f.has("tokenizer.ggml.tokens") ? f.array("tokenizer.ggml.tokens") : List.of();
        return id >= 0 && id < tokens.size() ? String.valueOf(tokens.get((int) id)) : "";
    }

    private static String tokenText(JsonNode token) {
        return token.isTextual() ? token.textValue() : token.path("content").asText("");
    }

    private static Jinjava jinjava() {
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withMaxOutputSize(MAX_OUTPUT_CHARS)
                // Python's operator precedence and whitespace control, as the templates are written for Jinja2.
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseNaturalOperatorPrecedence(true)
                        .withParseWhitespaceControlStrictly(true)
                        .withUseTrimmingForNotesAndExpressions(true)
                        .build())
                .build();
        Jinjava j = new Jinjava(config);
        j.registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raiseException",
                String.class));
        return j;
    }
}
