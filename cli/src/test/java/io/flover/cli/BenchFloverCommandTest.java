package io.flover.cli;

import static io.flover.cli.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code flover bench flover}: every experiment on a tiny model, what it reports, and its flag errors. */
class BenchFloverCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final byte[] PNG_MAGIC = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    private static final int REQUESTS = 6;

    @TempDir
    static Path model;

    @BeforeAll
    static void writeModel() throws Exception {
        RandomCheckpoint.write(model, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 3, s -> { });
    }

    @Test
    void everyExperimentRunsEveryVariantToTheEnd(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("flover.json");
        GenerateCommandTest.Run r = run("bench", "flover", "--model", model.toString(), "--requests", "" + REQUESTS,
                "--output-len", "12", "--interval", "1", "--gaps", "1,4", "--lengths", "16,24", "--max-batch", "8",
                "--kv-memory", "16m", "--seed", "7", "--json", json.toString());
        assertEquals(0, r.exitCode(), r.err());
        JsonNode got = JSON.readTree(json.toFile());
        double step = got.get("step_ms").asDouble();
        assertTrue(step > 0, got.toString());
        assertEquals(model.getFileName().toString(), got.get("model").get("name").asText());
        assertEquals(128, got.get("model").get("hidden_size").asInt());

        JsonNode constant = got.get("constant");
        assertEquals(step, constant.get("interval_ms").asDouble(), 1e-9);
        JsonNode runs = constant.get("runs");
        assertEquals(List.of("fusion", "dynamic-batching", "sequential"), variants(runs));
        JsonNode fusion = runs.get(0);
        for (JsonNode run : runs) {
            assertAllCompleted(run, 12);
            // Speedups are the measured totals and latencies over fusion's, and the table prints the same.
            double total = run.get("duration_s").asDouble() / fusion.get("duration_s").asDouble();
            double latency = run.get("e2e_ms").get("mean").asDouble() / fusion.get("e2e_ms").get("mean").asDouble();
            assertEquals(total, run.get("speedup_total").asDouble(), 1e-9);
            assertEquals(latency, run.get("speedup_latency").asDouble(), 1e-9);
            assertTrue(r.out().contains(String.format("| %s | %.1f | %.2f |", run.get("variant").asText(),
                    run.get("duration_s").asDouble(), run.get("e2e_ms").get("mean").asDouble() / 1000)), r.out());
            assertTrue(tableRow(r.out(), "| " + run.get("variant").asText() + " |")
                    .endsWith(String.format("| %.2fx | %.2fx |", total, latency)), r.out());
        }
        assertEquals(1.0, fusion.get("speedup_total").asDouble(), 1e-12);
        // The workload as sent, for baselines outside Flover to replay: arrivals one interval apart, 8-token prompts.
        JsonNode sent = constant.get("workload");
        for (int i = 0; i < REQUESTS; i++) {
            assertEquals(i * step, sent.get("arrival_ms").get(i).asDouble(), 1e-3);
            assertEquals(8, sent.get("prompt_ids").get(i).size());
            assertEquals(12, sent.get("output_lens").get(i).asInt());
        }
        assertEquals(0, runs.get(2).get("slot_moves").asInt(), "sequential: one row, nothing to move");

        JsonNode gaps = got.get("poisson").get("gaps");
        assertEquals(2, gaps.size());
        for (int i = 0; i < 2; i++) {
            JsonNode g = gaps.get(i);
            assertEquals(i == 0 ? 1 : 4, g.get("gap_steps").asDouble());
            assertEquals(g.get("gap_steps").asDouble() * step, g.get("gap_ms").asDouble(), 1e-9);
            assertEquals(List.of("fusion", "dynamic-batching"), variants(g.get("runs")));
            g.get("runs").forEach(run -> assertAllCompleted(run, 12));
            JsonNode f = g.get("runs").get(0);
            JsonNode d = g.get("runs").get(1);
            assertEquals(d.get("duration_s").asDouble() / f.get("duration_s").asDouble(),
                    g.get("speedup_total").asDouble(), 1e-9);
            assertEquals(f.get("mean_in_flight").asDouble(), g.get("overlap_fusion").asDouble(), 1e-12);
            // Little's law: the mean number in flight is the summed latencies over the total time.
            assertEquals(REQUESTS * f.get("e2e_ms").get("mean").asDouble() / 1000 / f.get("duration_s").asDouble(),
                    g.get("overlap_fusion").asDouble(), 1e-9);
            assertTrue(g.get("overlap_fusion").asDouble() > 0);
            assertTrue(r.out().contains(String.format("| %d | %.1f | %.2f |", i == 0 ? 1 : 4,
                    g.get("gap_ms").asDouble(), g.get("overlap_fusion").asDouble())), r.out());
        }

        JsonNode lengths = got.get("reorder").get("lengths");
        assertEquals(2, lengths.size());
        for (JsonNode l : lengths) {
            assertEquals(List.of("fusion", "fusion without reordering"), variants(l.get("runs")));
            JsonNode on = l.get("runs").get(0);
            JsonNode off = l.get("runs").get(1);
            assertAllCompleted(on, -1);
            assertAllCompleted(off, -1);
            assertEquals(on.get("output_tokens").asLong(), off.get("output_tokens").asLong(), "the same workload");
            assertEquals(0, off.get("slot_moves").asLong(), "without reordering no slot moves");
            assertEquals(off.get("duration_s").asDouble() / on.get("duration_s").asDouble(),
                    l.get("speedup_total").asDouble(), 1e-9);
            int max = l.get("max_len").asInt();
            long asked = StreamSupport.stream(l.get("workload").get("output_lens").spliterator(), false)
                    .mapToLong(JsonNode::asLong).sum();
            assertEquals(asked, on.get("output_tokens").asLong(), "the workload's lengths are what was generated");
            assertTrue(on.get("output_tokens").asLong() >= 16L * REQUESTS
                    && on.get("output_tokens").asLong() <= (long) max * REQUESTS, l.toString());
            assertTrue(r.out().contains("| " + max + " | on |") && r.out().contains("| " + max + " | off |"), r.out());
        }

        for (String experiment : List.of("constant", "poisson", "reorder")) {
            byte[] png = Files.readAllBytes(dir.resolve("flover-" + experiment + ".png"));
            assertTrue(png.length > 1000, experiment + ": PNG of " + png.length + " bytes");
            assertArrayEquals(PNG_MAGIC, Arrays.copyOf(png, PNG_MAGIC.length));
        }
    }

    @Test
    void experimentsCanBeChosenAndPlotsNamed(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("only.json");
        GenerateCommandTest.Run r = run("bench", "flover", "--model", model.toString(), "--experiments", "reorder",
                "--requests", "3", "--lengths", "16", "--kv-memory", "16m", "--json", json.toString(),
                "--plots", dir.resolve("pics").toString());
        assertEquals(0, r.exitCode(), r.err());
        JsonNode got = JSON.readTree(json.toFile());
        assertTrue(got.has("reorder") && !got.has("constant") && !got.has("poisson"), got.toString());
        assertFalse(r.out().contains("| sequential |"), r.out());
        assertTrue(Files.size(dir.resolve("pics-reorder.png")) > 1000);
        assertFalse(Files.exists(dir.resolve("pics-constant.png")));
    }

    /**
     * deploy/bench/hf_baseline.py reads this command's JSON. Simulated, its replay serves every workload to the end,
     * no faster than its batches allow, beside fusion's own figures; its batching is also checked on a simulated
     * clock by its unit tests.
     */
    @Test
    void theTransformersBaselineReplaysTheWorkloadsOfTheJson(@TempDir Path dir) throws Exception {
        assumeTrue(onPath("python3"), "no python3 on the PATH");
        Path json = dir.resolve("flover.json");
        GenerateCommandTest.Run r = run("bench", "flover", "--model", model.toString(), "--experiments",
                "constant,reorder", "--requests", "4", "--output-len", "6", "--lengths", "16", "--max-batch", "2",
                "--kv-memory", "16m", "--json", json.toString());
        assertEquals(0, r.exitCode(), r.err());
        Path scripts = DeploymentManifestsTest.ROOT.resolve("deploy/bench");
        String units = python(scripts, "-m", "unittest", "discover", "-s", scripts.toString());
        Path out = dir.resolve("hf.json");
        double stepSeconds = 0.002;
        String table = python(scripts, scripts.resolve("hf_baseline.py").toString(), json.toString(),
                "--simulate-step-ms", "" + stepSeconds * 1000, "--json", out.toString());
        assertTrue(table.contains("| workload | total (s), Flover fusion |"), table);

        JsonNode bench = JSON.readTree(json.toFile());
        JsonNode rows = JSON.readTree(out.toFile()).get("rows");
        assertEquals(2, rows.size(), units + table);
        JsonNode[] fusion = {bench.get("constant").get("runs").get(0),
            bench.get("reorder").get("lengths").get(0).get("runs").get(0)};
        int[] tokens = {6, 16};
        for (int i = 0; i < 2; i++) {
            JsonNode row = rows.get(i);
            assertEquals(4, row.get("requests").asInt());
            assertEquals(fusion[i].get("duration_s").asDouble(), row.get("fusion_total_s").asDouble(), 1e-12);
            assertEquals(row.get("static_total_s").asDouble() / row.get("fusion_total_s").asDouble(),
                    row.get("speedup_total").asDouble(), 1e-9);
            // Four requests in batches of two: at least two batches one after the other, each a full output long.
            assertTrue(row.get("static_total_s").asDouble() >= 2 * tokens[i] * stepSeconds, row.toString());
            assertTrue(row.get("static_mean_latency_s").asDouble() >= tokens[i] * stepSeconds, row.toString());
        }
    }

    private static boolean onPath(String program) {
        return Arrays.stream(System.getenv().getOrDefault("PATH", "").split(File.pathSeparator))
                .anyMatch(d -> Files.isExecutable(Path.of(d.isEmpty() ? "." : d, program)));
    }

    /** Runs python3 in {@code dir}; its output, or an assertion failure with it. */
    private static String python(Path dir, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("python3"));
        command.addAll(List.of(args));
        ProcessBuilder b = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true);
        b.environment().put("PYTHONDONTWRITEBYTECODE", "1"); // no __pycache__ in the source tree
        Process p = b.start();
        String output = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), String.join(" ", command) + "\n" + output);
        return output;
    }

    @ParameterizedTest
    @ValueSource(strings = {"--requests=0", "--prompt-len=0", "--output-len=0", "--interval=0", "--gaps=2,-1",
            "--lengths=8", "--max-batch=0", "--max-queue-delay=-1", "--kv-memory=lots", "--threads=0",
            "--experiments=constant,bogus", "--device=gpu"})
    void aBadFlagIsOneLineNamingIt(String flag) {
        GenerateCommandTest.Run r = run("bench", "flover", "--model", model.toString(), flag);
        assertEquals(2, r.exitCode());
        String name = flag.substring(0, flag.indexOf('='));
        assertTrue(r.err().startsWith("flover bench flover: " + name), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void requestsThatDoNotFitTheContextAreRefusedUpFront(@TempDir Path empty) {
        GenerateCommandTest.Run r = run("bench", "flover", "--model", model.toString(), "--output-len", "2045");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover bench flover: --prompt-len/--output-len/--lengths")
                && r.err().contains("2048"), r.err());
        r = run("bench", "flover", "--model", empty.toString());
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("config.json"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    private static List<String> variants(JsonNode runs) {
        return StreamSupport.stream(runs.spliterator(), false)
                .map(run -> run.get("variant").asText()).toList();
    }

    /** Every request completed with all its tokens ({@code outputLength} each, or as drawn where it is -1). */
    private static void assertAllCompleted(JsonNode run, int outputLength) {
        assertEquals(REQUESTS, run.get("requests").asInt(), run.toString());
        assertEquals(REQUESTS, run.get("completed").asInt(), run.toString());
        assertEquals(0, run.get("failed").asInt(), run.toString());
        if (outputLength > 0) {
            assertEquals((long) outputLength * REQUESTS, run.get("output_tokens").asLong(), run.toString());
        }
    }

    /** The table row that starts with {@code start}. */
    private static String tableRow(String out, String start) {
        return out.lines().filter(l -> l.startsWith(start)).findFirst().orElseThrow(() -> new AssertionError(out));
    }
}
