package io.flover.cli;

import static io.flover.cli.GenerateCommandTest.golden;
import static io.flover.cli.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.flover.kernels.cuda.Cuda;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** {@code --device} on every command that runs a model: a bad or missing device is one line naming the flag. */
class DeviceFlagsTest {
    /** Each command with the arguments it needs to get as far as its device. */
    static Stream<List<String>> commands() throws Exception {
        String model = golden("llama-tiny-f32").toString();
        return Stream.of(
                List.of("generate", "--model", model, "--prompt-ids", "1,2", "--max-tokens", "2"),
                List.of("serve", "--model", model, "--port", "0"),
                List.of("worker", "--port", "0"),
                List.of("bench-engine", "--model", model),
                List.of("bench", "flover", "--model", model));
    }

    @ParameterizedTest
    @MethodSource("commands")
    void anUnknownDeviceIsOneLineNamingTheFlag(List<String> command) {
        GenerateCommandTest.Run r = run(with(command, "--device", "gpu"));
        assertEquals(2, r.exitCode(), r.err());
        assertTrue(r.err().contains(": --device must be cpu, cuda or cuda:N, got 'gpu'"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @ParameterizedTest
    @MethodSource("commands")
    void aMissingGpuIsOneLineSayingWhatIsMissing(List<String> command) {
        String missing = Cuda.unavailableReason(0);
        assumeTrue(missing != null, "this machine has a usable GPU 0");
        GenerateCommandTest.Run r = run(with(command, "--device", "cuda"));
        assertEquals(2, r.exitCode(), r.err());
        assertTrue(r.err().strip().endsWith(": --device cuda:0: " + missing), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    private static String[] with(List<String> command, String... more) {
        return Stream.concat(command.stream(), Stream.of(more)).toArray(String[]::new);
    }
}
