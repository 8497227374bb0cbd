package io.flover.openai;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.InvalidFieldException;
import io.flover.openai.ChatTemplate.Message;
import io.flover.model.gguf.GgufWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The chat templates of the common model families, written as their checkpoints ship them, rendered as HF does. */
class ChatTemplateTest {
    static final String LLAMA3 = "{% set loop_messages = messages %}{% for message in loop_messages %}"
            + "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
            + "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
            + "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    static final String CHATML = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            + "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
            + "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /** ChatML over several lines, indented: right only with trim_blocks and lstrip_blocks. */
    static final String CHATML_MULTILINE = """
            {% for message in messages %}
                {% if loop.first and messages[0]['role'] != 'system' %}
            <|im_start|>system
            You are a helpful assistant.<|im_end|>
                {% endif %}
            <|im_start|>{{ message['role'] }}
            {{ message['content'] }}<|im_end|>
            {% endfor %}
            {% if add_generation_prompt %}
            <|im_start|>assistant
            {% endif %}
            """;

    static final String MISTRAL = "{{ bos_token }}{% for message in messages %}"
            + "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            + "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
            + "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
            + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
            + "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

    static final List<Message> CONVERSATION = List.of(new Message("system", "You are terse."),
            new Message("user", "Hi"), new Message("assistant", "Hello!"), new Message("user", "Bye"));

    @Test
    void llama3HeadersWithSystemAndTurns() {
        ChatTemplate t = new ChatTemplate(LLAMA3, "<|begin_of_text|>", "<|eot_id|>");
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", t.render(CONVERSATION, true));
        // trim applies to the content alone, and no assistant header is opened without add_generation_prompt
        assertEquals("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
                t.render(List.of(new Message("user", "  Hi \n")), false));
    }

    @Test
    void chatMlAddsQwensDefaultSystemPrompt() {
        for (String source : List.of(CHATML, CHATML_MULTILINE)) {
            ChatTemplate t = new ChatTemplate(source, null, "<|im_end|>");
            assertEquals("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                    t.render(List.of(new Message("user", "Hi")), true), source);
            assertEquals("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    + "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
                    t.render(CONVERSATION, false), source);
        }
    }

    @Test
    void mistralInstTurnsAndItsRefusals() {
        ChatTemplate t = new ChatTemplate(MISTRAL, "<s>", "</s>");
        assertEquals("<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]", t.render(CONVERSATION.subList(1, 4), true));
        InvalidFieldException system = assertThrows(InvalidFieldException.class, () -> t.render(CONVERSATION, true));
        assertEquals("messages", system.field());
        assertTrue(system.getMessage().contains("Conversation roles must alternate"), system.getMessage());
        InvalidFieldException twice = assertThrows(InvalidFieldException.class, () -> t.render(
                List.of(new Message("user", "a"), new Message("user", "b")), true));
        assertTrue(twice.getMessage().contains("must alternate"), twice.getMessage());
    }

    @Test
    void loadsTheDefaultOfNamedTemplatesAndTheOverride(@TempDir Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        assertTrue(ChatTemplate.load(dir, null).isEmpty(), "no tokenizer_config.json: no template");
        json.writeValue(dir.resolve("tokenizer_config.json").toFile(), Map.of(
                "bos_token", Map.of("content", "<s>"), "eos_token", "</s>",
                "chat_template", List.of(Map.of("name", "tool_use", "template", "tools"),
                        Map.of("name", "default", "template", "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}"))));
        List<Message> hi = List.of(new Message("user", "hi"));
        assertEquals("<s>hi</s>", ChatTemplate.load(dir, null).orElseThrow().render(hi, false));
        Path file = Files.writeString(dir.resolve("override.jinja"), "[{{ messages[0]['role'] }}]");
        assertEquals("[user]", ChatTemplate.load(dir, file).orElseThrow().render(hi, false));
    }

    @Test
    void aGgufModelCarriesItsTemplateAndSpecialTokens(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("model.gguf");
        new GgufWriter().string("general.architecture", "llama")
                .strings("tokenizer.ggml.tokens", List.of("<unk>", "<s>", "</s>")).u32("tokenizer.ggml.bos_token_id", 1)
                .u32("tokenizer.ggml.eos_token_id", 2)
                .string("tokenizer.chat_template", "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}")
                .write(file);
        List<Message> hi = List.of(new Message("user", "hi"));
        assertEquals("<s>hi</s>", ChatTemplate.load(file, null).orElseThrow().render(hi, false));
        assertEquals("<s>hi</s>", ChatTemplate.load(dir, null).orElseThrow().render(hi, false), "a directory with the file");
    }
}
