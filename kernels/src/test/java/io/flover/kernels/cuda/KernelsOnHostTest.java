package io.flover.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Runs the CUDA kernels on the CPU ({@code src/test/cuda/host-check.sh}) against reference results, so that their
 * arithmetic is checked on machines without a GPU. Skipped where bash, a C++ compiler or the CUDA headers are
 * missing.
 */
class KernelsOnHostTest {
    @Test
    void kernelsMatchTheReferencesOnTheHost() throws IOException, InterruptedException {
        Path script = moduleDir().resolve("src/test/cuda/host-check.sh");
        assertTrue(Files.isRegularFile(script), "no " + script);
        assumeTrue(Files.isExecutable(Path.of("/bin/bash")), "no /bin/bash");
        Path log = Files.createTempFile("host-check", ".log");
        try {
            Process p = new ProcessBuilder("/bin/bash", script.toString())
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            boolean done = p.waitFor(10, TimeUnit.MINUTES);
            if (!done) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor();
            }
            String output = Files.readString(log, StandardCharsets.UTF_8);
            assertTrue(done, "host-check did not finish in 10 minutes:\n" + output);
            assumeTrue(p.exitValue() != 3, output.strip());
            assertEquals(0, p.exitValue(), "host-check failed:\n" + output);
            assertTrue(output.contains(" 0 failed"), output);
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static Path moduleDir() {
        String basedir = System.getProperty("basedir");
        if (basedir != null) {
            return Path.of(basedir);
        }
        Path here = Path.of("").toAbsolutePath();
        return Files.isDirectory(here.resolve("kernels/src")) ? here.resolve("kernels") : here;
    }
}
