package io.flover.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.coordinator.GenerationRequest;
import io.flover.coordinator.Generator;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.worker.LoadedModel;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckResponse;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The CPU image as deploy/image.sh builds it with podman on the local Debian base, run as Kubernetes runs it: a
 * coordinator and two workers, each a container with a read-only root file system and the model mounted read-only,
 * started with the flags of k8s/base's pods and the settings of k8s/base/flover.env. They share the host network,
 * so each takes ports of its own. The group gives concurrent clients outside the containers the golden greedy ids;
 * {@code podman stop} on the coordinator drains the requests in flight and it exits 0. Skipped, with the reason,
 * where podman is missing or cannot run a container. Podman runs with deploy/podman.conf unless CONTAINERS_CONF
 * names another.
 */
class ContainerImageIT {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final Path JAR = Path.of(System.getProperty("flover.jar", "../cli/target/flover-build.jar"));
    private static final Path LOGS = Path.of(System.getProperty("flover.it.logs", "target/it-logs")).resolve("image");
    private static final String BASE = "localhost/debian-min:bookworm";
    private static final String MODEL = "/models/llama-tiny-f32";
    private static final int USER = 10001;

    private final String prefix = "flover-it-" + UUID.randomUUID().toString().substring(0, 8) + "-";
    /** A tag of this run's own: other checkouts on this machine may build theirs at the same time. */
    private final String image = "localhost/" + prefix + "cpu";
    private final List<String> containers = new ArrayList<>();
    private final Set<Integer> ports = new HashSet<>();

    @Test
    void aTensorParallelGroupOfContainersServesTheGoldenIdsAndDrainsOnStop() throws Exception {
        Assumptions.assumeTrue(onPath("podman"), "podman is not installed");
        Files.createDirectories(LOGS);
        Result build = run(Duration.ofMinutes(10), "bash", ROOT.resolve("deploy/image.sh").toString(), "cpu",
                "--engine", "podman", "--local-base", "--tag", image, "--jar", JAR.toAbsolutePath().toString());
        Files.writeString(LOGS.resolve("build.log"), build.output());
        if (build.status() != 0) {
            Result probe = podman("run", "--rm", "--network=host", BASE, "true");
            Assumptions.assumeTrue(probe.status() == 0, "podman cannot run a container here: " + probe.output());
        }
        assertEquals(0, build.status(), build.output());
        try {
            runGroup();
        } finally {
            for (String c : containers) {
                Files.writeString(LOGS.resolve(c.substring(prefix.length()) + ".log"), podman("logs", c).output());
                podman("rm", "--force", "--time", "0", c);
            }
            podman("rmi", image);
        }
    }

    private void runGroup() throws Exception {
        long imageBytes = Long.parseLong(podman("image", "inspect", "--format", "{{.Size}}", image).output().strip());

        Path model = TensorParallelClusterIT.golden("llama-tiny-f32");
        List<TensorParallelClusterIT.Golden> cases = TensorParallelClusterIT.cases("llama-tiny-f32");
        int[] longPrompt = cases.getFirst().prompt();
        int longTokens = 200;
        int[] longExpected = alone(model, longPrompt, longTokens);

        Map<String, String> config = settings();
        config.put("FLOVER_MODEL", MODEL);
        config.put("FLOVER_KV_MEMORY", "16m");
        config.put("FLOVER_CLUSTER_NAME", prefix + "cluster");
        int port = port();
        int clusterPort = port();
        long start = System.nanoTime();
        String coordinator = start("coordinator", model, coordinatorArgs(config, port, port(), clusterPort, port()));
        List<String> workers = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            workers.add(start("worker-" + i, model, workerArgs(config, clusterPort)));
        }
        ManagedChannel channel = ProcessCluster.channel(port);
        awaitServing(channel, Duration.ofMinutes(5));
        double readySeconds = (System.nanoTime() - start) / 1e9;
        String report = String.format("CPU image: %.0f MB; coordinator and 2 workers started to ready in %.1f s%n",
                imageBytes / 1e6, readySeconds);
        System.out.print(report);
        Files.writeString(LOGS.resolve("report.txt"), report);

        for (String c : containers) {
            assertEquals("Uid:\t" + USER + "\t" + USER + "\t" + USER + "\t" + USER,
                    podman("exec", c, "grep", "^Uid:", "/proc/1/status").output().strip(), c + ": the JVM's user");
            Result write = podman("exec", c, "touch", "/opt/flover/written");
            assertNotEquals(0, write.status(), c + ": wrote to the root file system");
            assertTrue(write.output().contains("Read-only file system"), write.output());
            assertNotEquals(0, podman("exec", c, "touch", MODEL + "/written").status(), c + ": wrote to the model");
            Result health = podman("healthcheck", "run", c);
            assertEquals(0, health.status(), c + ": healthcheck: " + health.output());
        }

        ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor();
        List<Future<int[]>> got = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            TensorParallelClusterIT.Golden g = cases.get(i % cases.size());
            got.add(clients.submit(() -> TensorParallelClusterIT.generate(channel, g.prompt(), g.greedy().length)));
        }
        for (int i = 0; i < got.size(); i++) {
            assertArrayEquals(cases.get(i % cases.size()).greedy(), got.get(i).get(2, TimeUnit.MINUTES), "client " + i);
        }

        AtomicInteger streaming = new AtomicInteger();
        Future<int[]> inFlight = clients.submit(
                () -> TensorParallelClusterIT.generate(channel, longPrompt, longTokens, streaming));
        ProcessCluster.await("the first tokens", Duration.ofSeconds(60), () -> streaming.get() > 0);
        assertFalse(inFlight.isDone(), "the request must be in flight when the coordinator is stopped");
        Result stop = podman("stop", "--time", "60", coordinator);
        assertEquals(0, stop.status(), stop.output());
        assertArrayEquals(longExpected, inFlight.get(2, TimeUnit.MINUTES), "the request in flight at the stop");
        assertEquals("0", podman("inspect", "--format", "{{.State.ExitCode}}", coordinator).output().strip(),
                "the coordinator's exit status");
        assertTrue(podman("logs", coordinator).output().contains("shutting down"));
        for (String w : workers) {
            assertEquals(0, podman("stop", "--time", "30", w).status());
            assertEquals("0", podman("inspect", "--format", "{{.State.ExitCode}}", w).output().strip(), w);
        }
        clients.shutdownNow();
        channel.shutdownNow();
    }

    /** k8s/base/flover.env, the ConfigMap's source: KEY=value lines. */
    private static Map<String, String> settings() throws IOException {
        Map<String, String> env = new LinkedHashMap<>();
        for (String line : Files.readAllLines(ROOT.resolve("k8s/base/flover.env"))) {
            if (!line.isBlank() && !line.startsWith("#")) {
                env.put(line.substring(0, line.indexOf('=')), line.substring(line.indexOf('=') + 1));
            }
        }
        return env;
    }

    /**
     * The args of k8s/base/coordinator.yaml: loopback for the pod IP, the cluster's address for its Service, and a
     * port of its own for the HTTP API, whose default port another process on this host may hold.
     */
    private static List<String> coordinatorArgs(Map<String, String> config, int port, int metricsPort,
                                                int clusterPort, int httpPort) {
        Map<String, String> unused = new LinkedHashMap<>(config);
        List<String> args = List.of("coordinator",
                "--model=" + unused.remove("FLOVER_MODEL"),
                "--tp=" + unused.remove("FLOVER_TP"),
                "--host=127.0.0.1",
                "--port=" + port,
                "--advertise-host=127.0.0.1",
                "--metrics-port=" + metricsPort,
                "--cluster=127.0.0.1:" + clusterPort,
                "--cluster-name=" + unused.remove("FLOVER_CLUSTER_NAME"),
                "--cluster-port=" + clusterPort,
                "--step-timeout=" + unused.remove("FLOVER_STEP_TIMEOUT"),
                "--load-timeout=" + unused.remove("FLOVER_LOAD_TIMEOUT"),
                "--policy=" + unused.remove("FLOVER_POLICY"),
                "--max-batch=" + unused.remove("FLOVER_MAX_BATCH"),
                "--max-step-tokens=" + unused.remove("FLOVER_MAX_STEP_TOKENS"),
                "--max-waiting=" + unused.remove("FLOVER_MAX_WAITING"),
                "--max-queue-delay=" + unused.remove("FLOVER_MAX_QUEUE_DELAY"),
                "--http-port=" + httpPort);
        // The workers take the rest; a key no process reads would be a setting with no effect.
        assertEquals(new TreeSet<>(List.of("FLOVER_KV_MEMORY", "FLOVER_DEVICE")), new TreeSet<>(unused.keySet()),
                "k8s/base/flover.env's keys the coordinator does not read");
        return args;
    }

    /** The args of k8s/base/worker.yaml, on ports of its own; one compute thread, as this machine is shared. */
    private List<String> workerArgs(Map<String, String> config, int clusterPort) {
        int port = port();
        return List.of("worker",
                "--host=127.0.0.1",
                "--advertise-host=127.0.0.1",
                "--port=" + port,
                "--collective-port=" + port(),
                "--metrics-port=" + port(),
                "--cluster=127.0.0.1:" + clusterPort,
                "--cluster-name=" + config.get("FLOVER_CLUSTER_NAME"),
                "--cluster-port=" + port(),
                "--kv-memory=" + config.get("FLOVER_KV_MEMORY"),
                "--device=" + config.get("FLOVER_DEVICE"),
                "--threads=1");
    }

    /**
     * A port below the kernel's ephemeral range (32768 and up), free now and not handed out before: the processes
     * bind theirs only once their JVMs are up, and a port from the ephemeral range may be taken by then by any
     * outgoing connection on this machine.
     */
    private int port() {
        while (true) {
            int candidate = ThreadLocalRandom.current().nextInt(20000, 32000);
            if (ports.contains(candidate)) {
                continue;
            }
            try (ServerSocket s = new ServerSocket()) {
                s.bind(new InetSocketAddress("127.0.0.1", candidate));
            } catch (IOException taken) {
                continue;
            }
            ports.add(candidate);
            return candidate;
        }
    }

    /** Waits for the coordinator to serve, failing at once with its log if one of the containers has stopped. */
    private void awaitServing(ManagedChannel channel, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (ProcessCluster.health(channel, GenerationGrpc.SERVICE_NAME)
                != HealthCheckResponse.ServingStatus.SERVING) {
            for (String c : containers) {
                if (!podman("inspect", "--format", "{{.State.Running}}", c).output().strip().equals("true")) {
                    throw new AssertionError(c + " stopped:\n" + podman("logs", c).output());
                }
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the coordinator does not serve after " + timeout.toSeconds() + " s");
            }
            Thread.sleep(500);
        }
    }

    /** Runs the image detached as {@code name}: host network, read-only root, the model read-only at MODEL. */
    private String start(String name, Path model, List<String> args) throws Exception {
        String container = prefix + name;
        List<String> command = new ArrayList<>(List.of("run", "--detach", "--name", container, "--network=host",
                "--read-only", "--volume", model + ":" + MODEL + ":ro", image));
        command.addAll(args);
        containers.add(container);
        Result r = podman(command.toArray(String[]::new));
        assertEquals(0, r.status(), r.output());
        return container;
    }

    /** What a single sequence generates alone, in this JVM: what fused serving must give it too. */
    private static int[] alone(Path model, int[] prompt, int tokens) throws Exception {
        try (CpuKernels kernels = new CpuKernels(1); LoadedModel m = LoadedModel.open(model, new CpuBackend(kernels))) {
            return new Generator(m.lm(), null)
                    .generate(GenerationRequest.greedy(prompt, tokens).withIgnoreEos(), t -> { }).tokenIds();
        }
    }

    private record Result(int status, String output) {
    }

    private static Result podman(String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("podman"));
        command.addAll(List.of(args));
        return run(Duration.ofMinutes(2), command.toArray(String[]::new));
    }

    private static Result run(Duration timeout, String... command) throws Exception {
        ProcessBuilder b = new ProcessBuilder(command).redirectErrorStream(true);
        b.environment().putIfAbsent("CONTAINERS_CONF", ROOT.resolve("deploy/podman.conf").toString());
        Path out = Files.createTempFile("podman", ".log");
        try {
            Process p = b.redirectOutput(out.toFile()).start();
            if (!p.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                throw new AssertionError(String.join(" ", command) + " did not finish in " + timeout + ":\n"
                        + Files.readString(out));
            }
            return new Result(p.exitValue(), Files.readString(out));
        } finally {
            Files.delete(out);
        }
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return false;
    }
}
