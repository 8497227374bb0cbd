package io.flover.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.model.tokenizer.Tokenizer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code flover generate} end to end: golden numbers through the CLI, and its errors. */
class GenerateCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    record Run(int exitCode, String out, String err) {
    }

    static Run run(String... args) {
        CommandLine cli = Flover.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out));
        cli.setErr(new PrintWriter(err));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    static Path golden(String name) throws Exception {
        return Path.of(GenerateCommandTest.class.getResource("/golden/" + name + "/config.json").toURI()).getParent();
    }

    @Test
    void jsonOutputMatchesGoldenGreedyIdsAndLogits() throws Exception {
        for (String name : new String[] {"llama-tiny-f32", "gpt2-tiny-bf16"}) {
            JsonNode expected = JSON.readTree(golden(name).resolve("expected.json").toFile()).get("cases").get(1);
            StringBuilder ids = new StringBuilder();
            expected.get("prompt_ids").forEach(n -> ids.append(ids.isEmpty() ? "" : ",").append(n.asInt()));
            Run r = run("generate", "--model", golden(name).toString(), "--prompt-ids", ids.toString(),
                    "--max-tokens", "24", "--ignore-eos", "--json", "--logits");
            assertEquals(0, r.exitCode(), r.err());
            JsonNode got = JSON.readTree(r.out());
            assertArrayEquals(JSON.treeToValue(expected.get("greedy_ids"), int[].class),
                    JSON.treeToValue(got.get("token_ids"), int[].class), name);
            assertEquals("length", got.get("finish_reason").asText());
            float[] want = JSON.treeToValue(expected.get("last_logits"), float[].class);
            float[] logits = JSON.treeToValue(got.get("first_logits"), float[].class);
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], logits[i], 1e-4, name + " logit " + i);
            }
        }
    }

    @Test
    void generatesTextWithAModelItWroteItself(@TempDir Path dir) throws Exception {
        RandomCheckpoint.write(dir, Architecture.GPT2, RandomCheckpoint.Preset.TINY, DType.BF16, 3, s -> { });
        Run r = run("generate", "--model", dir.toString(), "--prompt", "Hello world", "--max-tokens", "5",
                "--ignore-eos", "--json");
        assertEquals(0, r.exitCode(), r.err());
        JsonNode got = JSON.readTree(r.out());
        assertEquals(5, got.get("token_ids").size());
        assertEquals(Tokenizer.load(dir).encode("Hello world", true).length, got.get("usage").get("prompt_tokens").asInt());
        assertTrue(got.get("text").isTextual());
    }

    @Test
    void badModelDirectoryIsExitCodeTwoWithOneLine(@TempDir Path dir) {
        Run r = run("generate", "--model", dir.toString(), "--prompt-ids", "1", "--max-tokens", "2");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("config.json"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void badFlagsAreExitCodeTwo() throws Exception {
        assertEquals(2, run("generate", "--model", golden("llama-tiny-f32").toString(), "--max-tokens", "2").exitCode(),
                "a prompt is required");
        assertEquals(2, run("generate", "--bogus").exitCode());
        Run r = run("generate", "--model", golden("llama-tiny-f32").toString(), "--prompt-ids", "1,99999");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("99999"), r.err());
        r = run("generate", "--model", golden("llama-tiny-f32").toString(), "--prompt-ids", "1", "--max-tokens", "1000");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("context length"), r.err());
        r = run("generate", "--model", golden("llama-tiny-f32").toString(), "--prompt-ids", "1", "--top-p", "NaN");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("top_p"), r.err());
        r = run("generate", "--model", golden("llama-tiny-f32").toString(), "--prompt", "hi");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("tokenizer.json"), r.err());
    }
}
