package io.flover.cli;

import static io.flover.cli.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.server.FloverServer;
import io.flover.server.ServerTesting;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code flover generate --server}: the same flags and output as local generation, and gRPC errors as exit code 2. */
class RemoteGenerateTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static FloverServer golden;
    static FloverServer text;
    static ServerTesting.Golden goldenCase;

    @TempDir
    static Path textModel;

    @BeforeAll
    static void start() throws Exception {
        golden = ServerTesting.start(ServerTesting.golden("llama-tiny-f32"));
        RandomCheckpoint.write(textModel, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 5, s -> { });
        text = ServerTesting.start(textModel);
        goldenCase = ServerTesting.cases("llama-tiny-f32").get(1);
    }

    @AfterAll
    static void stop() {
        golden.close();
        text.close();
    }

    static String address(FloverServer server) {
        return "127.0.0.1:" + server.port();
    }

    static String promptIds() {
        return Arrays.stream(goldenCase.prompt()).mapToObj(Integer::toString).collect(Collectors.joining(","));
    }

    @Test
    void jsonOutputHasTheGoldenGreedyIds() throws Exception {
        GenerateCommandTest.Run r = run("generate", "--server", address(golden), "--prompt-ids", promptIds(),
                "--max-tokens", "24", "--ignore-eos", "--json");
        assertEquals(0, r.exitCode(), r.err());
        JsonNode got = JSON.readTree(r.out());
        assertArrayEquals(goldenCase.greedy(), JSON.treeToValue(got.get("token_ids"), int[].class));
        assertEquals("length", got.get("finish_reason").asText());
        assertEquals(goldenCase.prompt().length, got.get("usage").get("prompt_tokens").asInt());
        assertEquals(24, got.get("usage").get("completion_tokens").asInt());
        ServerTesting.assertPoolWhole(golden.replicas());
    }

    @Test
    void textModePrintsIdsForAModelWithoutTokenizer() {
        GenerateCommandTest.Run r = run("generate", "--server", address(golden), "--prompt-ids", promptIds(),
                "--max-tokens", "5", "--ignore-eos");
        assertEquals(0, r.exitCode(), r.err());
        String want = Arrays.stream(Arrays.copyOf(goldenCase.greedy(), 5)).mapToObj(Integer::toString)
                .collect(Collectors.joining(","));
        assertEquals(want, r.out().strip());
    }

    @Test
    void aServerGeneratesWhatLocalGenerationDoes() throws Exception {
        String[] flags = {"--prompt", "Hello world", "--max-tokens", "12", "--temperature", "0.9", "--top-k", "50",
                "--seed", "11", "--stop", "zzz", "--json"};
        GenerateCommandTest.Run local = run(concat(new String[] {"generate", "--model", textModel.toString()}, flags));
        GenerateCommandTest.Run remote = run(concat(new String[] {"generate", "--server", address(text)}, flags));
        assertEquals(0, local.exitCode(), local.err());
        assertEquals(0, remote.exitCode(), remote.err());
        JsonNode want = JSON.readTree(local.out());
        JsonNode got = JSON.readTree(remote.out());
        assertEquals(want.get("token_ids"), got.get("token_ids"));
        assertEquals(want.get("text"), got.get("text"));
        assertEquals(want.get("usage"), got.get("usage"));

        GenerateCommandTest.Run streamed = run("generate", "--server", address(text), "--prompt", "Hello world",
                "--max-tokens", "12", "--temperature", "0.9", "--top-k", "50", "--seed", "11");
        assertEquals("Hello world" + want.get("text").asText(), streamed.out().stripTrailing());
    }

    @Test
    void grpcErrorsAreExitCodeTwoWithTheStatus() {
        GenerateCommandTest.Run r = run("generate", "--server", address(golden), "--prompt-ids", "1", "--max-tokens", "1000");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover generate: INVALID_ARGUMENT: ") && r.err().contains("max_tokens"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());

        r = run("generate", "--server", address(golden), "--prompt", "hi");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover generate: INVALID_ARGUMENT: prompt.text"), r.err());
    }

    @Test
    void flagsThatCannotWorkRemotelyAreExitCodeTwo() {
        GenerateCommandTest.Run r = run("generate", "--server", address(golden), "--prompt-ids", "1", "--json", "--logits");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--logits"), r.err());
        r = run("generate", "--server", "localhost", "--prompt-ids", "1");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("HOST:PORT"), r.err());
        r = run("generate", "--server", address(golden), "--prompt-ids", "1", "--top-p", "NaN");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("top_p"), r.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
