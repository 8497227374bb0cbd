package io.flover.it;

import io.grpc.Grpc;
import io.flover.proto.v1.GenerationGrpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A coordinator and workers as real JVMs on loopback, started from the runnable jar, in a cluster of their own
 * (a fresh cluster name and ports). Each process logs to its own file. Closing kills every process, and a shutdown
 * hook does too, so no test leaves one behind, whatever happens to it.
 */
final class ProcessCluster implements AutoCloseable {
    /** A started process and its log. */
    record Node(String name, Process process, Path log) {
        String output() {
            try {
                return Files.readString(log);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        /** SIGKILL: the process gets no chance to say goodbye. */
        void kill() throws InterruptedException {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }

        void signal(String signal) throws IOException, InterruptedException {
            new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid())).inheritIO().start().waitFor();
        }
    }

    private static final Path JAR = Path.of(System.getProperty("flover.jar", "../cli/target/flover-build.jar"));
    /**
     * How long a cluster may take to form, load and serve: generous, because these JVMs share a CI machine's two cores
     * with each other and with the build.
     */
    static final Duration START = Duration.ofSeconds(180);
    private static final Path LOGS = Path.of(System.getProperty("flover.it.logs", "target/it-logs"));

    private final String clusterName = "it-" + UUID.randomUUID();
    private final int clusterPort = freePort();
    private final Path logs;
    private final List<Node> nodes = new ArrayList<>();
    private final Thread reaper = new Thread(this::killAll);
    private int workers;

    ProcessCluster(String test) throws IOException {
        if (!Files.isRegularFile(JAR)) {
            throw new IllegalStateException("no runnable jar at " + JAR.toAbsolutePath() + ": build the cli module first");
        }
        this.logs = Files.createDirectories(LOGS.resolve(test));
        Runtime.getRuntime().addShutdownHook(reaper);
    }

    /** Starts a coordinator serving {@code model} with groups of {@code tp} workers; returns its client port. */
    int startCoordinator(Path model, int tp, String... flags) throws IOException {
        int port = freePort();
        List<String> args = new ArrayList<>(List.of("coordinator", "--model", model.toString(), "--tp", Integer.toString(tp),
                "--host", "127.0.0.1", "--port", Integer.toString(port), "--cluster-port", Integer.toString(clusterPort),
                "--http-port", "0"));
        args.addAll(List.of(flags));
        Node coordinator = start("coordinator", args);
        awaitListening(coordinator, port);
        return port;
    }

    /**
     * Waits until {@code node} accepts connections on {@code port}. Workers started before then could take the port
     * for their own cluster member (Hazelcast counts up from the port it is given) and the coordinator could not
     * listen.
     */
    private static void awaitListening(Node node, int port) throws IOException {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (true) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
                return;
            } catch (IOException notYet) {
                if (!node.process().isAlive()) {
                    throw new IllegalStateException(node.name() + " exited before listening on " + port + ":\n"
                            + node.output());
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException(node.name() + " is not listening on " + port + " after 60 s:\n"
                            + node.output());
                }
                try {
                    Thread.sleep(100);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted waiting for " + node.name());
                }
            }
        }
    }

    /** Starts a worker with {@code flags}, and a KV memory of 16m unless they name one. */
    Node startWorker(String... flags) throws IOException {
        List<String> args = new ArrayList<>(List.of("worker", "--host", "127.0.0.1", "--threads", "1",
                "--cluster-port", Integer.toString(clusterPort + 1)));
        if (!List.of(flags).contains("--kv-memory")) {
            args.addAll(List.of("--kv-memory", "16m"));
        }
        args.addAll(List.of(flags));
        return start("worker-" + (++workers), args);
    }

    private Node start(String name, List<String> args) throws IOException {
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-Xmx384m", "-XX:+UseSerialGC", "-jar", JAR.toString()));
        command.addAll(args);
        command.addAll(List.of("--cluster", "127.0.0.1:" + clusterPort, "--cluster-name", clusterName));
        Path log = logs.resolve(name + ".log");
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        Node node = new Node(name, p, log);
        nodes.add(node);
        return node;
    }

    Node node(String name) {
        return nodes.stream().filter(n -> n.name().equals(name)).findFirst().orElseThrow();
    }

    /** Waits until the coordinator is ready (its Generation service SERVING): a group has formed and loaded. */
    static void awaitServing(ManagedChannel channel, Duration timeout) throws InterruptedException {
        await("the coordinator to serve", timeout,
                () -> health(channel, GenerationGrpc.SERVICE_NAME) == HealthCheckResponse.ServingStatus.SERVING);
    }

    /** What the health service says of {@code service} ("" for the server itself), or UNKNOWN if unreachable. */
    static HealthCheckResponse.ServingStatus health(ManagedChannel channel, String service) {
        try {
            return HealthGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus();
        } catch (RuntimeException e) {
            return HealthCheckResponse.ServingStatus.UNKNOWN;
        }
    }

    static void await(String what, Duration timeout, BooleanSupplier done) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout.toSeconds() + " s waiting for " + what);
            }
            Thread.sleep(100);
        }
    }

    /** The Prometheus exposition at {@code http://127.0.0.1:PORT/metrics}. */
    static String scrape(int port) throws IOException, InterruptedException {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                .build(), HttpResponse.BodyHandlers.ofString()).body();
    }

    /** The value of sample {@code name} (labels included) in an exposition, or NaN when it is not there. */
    static double metric(String exposition, String name) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + " (\\S+)$").matcher(exposition);
        return m.find() ? Double.parseDouble(m.group(1)) : Double.NaN;
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static ManagedChannel channel(int port) {
        return Grpc.newChannelBuilder("127.0.0.1:" + port, InsecureChannelCredentials.create()).build();
    }

    @Override
    public void close() {
        killAll();
        Runtime.getRuntime().removeShutdownHook(reaper);
    }

    private void killAll() {
        for (Node n : nodes) {
            n.process().destroyForcibly();
        }
        for (Node n : nodes) {
            try {
                n.process().waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

}
