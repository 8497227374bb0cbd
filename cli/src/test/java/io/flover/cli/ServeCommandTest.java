package io.flover.cli;

import static io.flover.cli.GenerateCommandTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.proto.v1.GenerationGrpc;
import io.flover.server.FloverServer;
import io.flover.server.ServerTesting;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code flover serve}: flags checked before anything loads, and a real server process that stops on SIGTERM. */
class ServeCommandTest {
    @ParameterizedTest
    @ValueSource(strings = {"12x", "0", "-5", "1.5g", "g", "99999999999g"})
    void aBadKvMemoryIsExitCodeTwoNamingTheFlag(String size) throws Exception {
        GenerateCommandTest.Run r = run("serve", "--model", ServerTesting.golden("llama-tiny-f32").toString(),
                "--kv-memory", size);
        assertEquals(2, r.exitCode());
        assertTrue(r.err().startsWith("flover serve: --kv-memory"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void sizesTakeBinarySuffixes() {
        assertEquals(1000, ByteSize.parse("--x", "1000"));
        assertEquals(4096, ByteSize.parse("--x", "4k"));
        assertEquals(512L << 20, ByteSize.parse("--x", "512m"));
        assertEquals(2L << 30, ByteSize.parse("--x", "2G"));
        assertThrows(IllegalArgumentException.class, () -> ByteSize.parse("--x", "2gb"));
    }

    @Test
    void otherBadFlagsNameTheFlag() throws Exception {
        String model = ServerTesting.golden("llama-tiny-f32").toString();
        assertTrue(run("serve", "--model", model, "--policy", "fifo").err().startsWith("flover serve: --policy"));
        assertTrue(run("serve", "--model", model, "--max-batch", "64", "--max-step-tokens", "32").err()
                .startsWith("flover serve: --max-step-tokens"));
        assertTrue(run("serve", "--model", model, "--port", "70000").err().startsWith("flover serve: --port"));
        GenerateCommandTest.Run r = run("serve", "--model", model, "--demo");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--demo"), r.err());
    }

    @Test
    void aBusyPortIsExitCodeTwoSayingWhy() throws Exception {
        Path model = ServerTesting.golden("llama-tiny-f32");
        try (FloverServer taken = ServerTesting.start(model)) {
            GenerateCommandTest.Run r = run("serve", "--model", model.toString(), "--host", "127.0.0.1",
                    "--port", Integer.toString(taken.port()), "--threads", "1", "--kv-memory", "1m");
            assertEquals(2, r.exitCode());
            assertTrue(r.err().startsWith("flover serve: cannot listen on 127.0.0.1:" + taken.port() + ": "), r.err());
        }
    }

    /** The way it runs in production: its own JVM, logs on stderr, stopped by a signal, exit status 0. */
    @Test
    void servesUntilSigtermAndExitsZero(@TempDir Path dir) throws Exception {
        Path model = ServerTesting.golden("llama-tiny-f32");
        Path stderr = dir.resolve("stderr");
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
                "-cp", System.getProperty("java.class.path"), Flover.class.getName(),
                "serve", "--model", model.toString(), "--host", "127.0.0.1", "--port", "0", "--threads", "1",
                "--kv-memory", "4m", "--http-port", "0")
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(stderr.toFile())
                .start();
        try {
            int port = awaitPort(stderr, p);
            ManagedChannel channel = Grpc.newChannelBuilder("127.0.0.1:" + port, InsecureChannelCredentials.create()).build();
            try {
                assertEquals(ServingStatus.SERVING, HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                        .check(HealthCheckRequest.newBuilder().setService(GenerationGrpc.SERVICE_NAME).build()).getStatus());
            } finally {
                ServerTesting.close(channel);
            }
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "still running after SIGTERM: " + Files.readString(stderr));
            String log = Files.readString(stderr);
            assertEquals(0, p.exitValue(), log);
            assertTrue(log.contains("INFO flover: model llama-tiny-f32 on cpu: LlamaForCausalLM, F32"), log);
            assertTrue(log.strip().endsWith("INFO flover: stopped"), log);
        } finally {
            p.destroyForcibly();
        }
    }

    private static int awaitPort(Path stderr, Process p) throws Exception {
        Pattern listening = Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)");
        // Start-up includes the kernels' warm-up, which takes tens of seconds on a loaded 2-core machine.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (System.nanoTime() < deadline && p.isAlive()) {
            Matcher m = listening.matcher(Files.readString(stderr));
            if (m.find()) {
                return Integer.parseInt(m.group(1));
            }
            Thread.sleep(20);
        }
        throw new AssertionError("the server did not start: " + Files.readString(stderr));
    }
}
