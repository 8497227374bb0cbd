package io.flover.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.kernels.cuda.Cuda;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * deploy/gpu-check/run.sh, in a kit laid out as deploy/gpu-check/pack.sh lays it out (the JDK running this test
 * standing in for the kit's runtime): its benchmark stages run on the CPU with the commands and options the CLI
 * has, and its test stage runs the CUDA golden tests from the kit's classpath and fails, rather than passes, where
 * they are skipped.
 */
class GpuCheckKitIT {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Path JAR = Path.of(System.getProperty("flover.jar", "../cli/target/flover-build.jar"));

    @Test
    void theEngineStageBenchmarksTheModelItWrites(@TempDir Path tmp) throws Exception {
        Path kit = kit(tmp);
        Path out = tmp.resolve("results");
        Path models = tmp.resolve("models");
        Result r = run(kit, tmp, "--device", "cpu", "--out", out.toString(), "--models", models.toString(),
                "info", "engine:tiny");
        assertEquals(0, r.status(), r.output());
        assertTrue(Files.readString(out.resolve("info.txt")).contains("cuBLAS: "), r.output());
        JsonNode engine = new ObjectMapper().readTree(out.resolve("engine-tiny.json").toFile());
        assertTrue(engine.toString().contains("llama-tiny-bf16"), engine.toString());
        assertTrue(Files.isRegularFile(models.resolve("llama-tiny-bf16/config.json")));
    }

    @Test
    void theTestStageFailsWhereTheGpuTestsCannotRun(@TempDir Path tmp) throws Exception {
        Assumptions.assumeTrue(Cuda.unavailableReason(0) != null, "this machine has a GPU: the tests would run");
        Path kit = kit(tmp);
        Path tests = Files.createDirectories(kit.resolve("tests"));
        Files.createSymbolicLink(tests.resolve("junit.jar"), Path.of(System.getProperty("flover.junit.console",
                "target/gpu-check/junit.jar")).toAbsolutePath());
        Files.createSymbolicLink(tests.resolve("classes"), ROOT.resolve("transformer/target/test-classes"));
        Path out = tmp.resolve("results");
        Result r = run(kit, tmp, "--out", out.toString(), "--models", tmp.resolve("models").toString(), "tests");
        assertEquals(1, r.status(), r.output());
        assertTrue(r.output().contains("tests failed or were skipped"), r.output());
        String junit = Files.readString(out.resolve("tests.txt"));
        assertTrue(junit.contains("CUDA tests skipped: "), "the kit ran CudaGoldenModelTest:\n" + junit);
    }

    @Test
    void unknownStagesAreRefusedByName(@TempDir Path tmp) throws Exception {
        Result r = run(kit(tmp), tmp, "--out", tmp.resolve("results").toString(), "--models",
                tmp.resolve("models").toString(), "benchmark");
        assertEquals(2, r.status(), r.output());
        assertTrue(r.output().contains("unknown stage benchmark"), r.output());
    }

    /** The kit's layout, from the build: runtime, jar, launcher and run.sh. */
    private static Path kit(Path tmp) throws IOException {
        Path kit = Files.createDirectories(tmp.resolve("flover-gpu-check"));
        Files.createSymbolicLink(kit.resolve("jre"), Path.of(System.getProperty("java.home")));
        Files.createSymbolicLink(kit.resolve("flover.jar"), JAR.toAbsolutePath());
        Files.copy(ROOT.resolve("flover"), kit.resolve("flover"));
        Files.copy(ROOT.resolve("deploy/gpu-check/run.sh"), kit.resolve("run.sh"));
        kit.resolve("flover").toFile().setExecutable(true);
        kit.resolve("run.sh").toFile().setExecutable(true);
        return kit;
    }

    private record Result(int status, String output) {
    }

    private static Result run(Path kit, Path tmp, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("/bin/bash", kit.resolve("run.sh").toString()));
        command.addAll(List.of(args));
        Path log = Files.createTempFile(tmp, "run", ".log");
        ProcessBuilder b = new ProcessBuilder(command).directory(tmp.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        b.environment().put("FLOVER_HOME", tmp.resolve("flover-home").toString());
        Process p = b.start();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor();
            throw new AssertionError("run.sh did not finish in 5 minutes:\n" + Files.readString(log));
        }
        return new Result(p.exitValue(), Files.readString(log));
    }
}
