package io.flover.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.flover.cluster.WorkerGroups;
import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.coordinator.ServingMetrics;
import io.flover.kernels.Device;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ListModelsRequest;
import io.flover.server.EmbeddedServer;
import io.flover.server.FloverServer;
import io.flover.server.ServerTesting;
import io.flover.worker.server.MetricsEndpoint;
import io.flover.worker.server.Tls;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

/**
 * The Kubernetes manifests ({@code k8s/}) against the CLI they start and the launcher that runs it: every flag the
 * pods pass is an option of its command and parses, with the values of the ConfigMap; ports, probes, Services and
 * the NetworkPolicy agree with the ports the processes bind; the pods set only environment variables the launcher
 * reads or their args use. The base is checked as written; the overlays as {@code kubectl kustomize} renders them,
 * when kubectl is on the PATH ({@code .ci/run} installs it), the cpu overlay also with each component of
 * {@code k8s/components} alone. The components' Secrets: every file a flag reads is a key of a Secret mounted
 * read-only for the pod's user, as {@code deploy/k8s-secrets.sh} makes it, and with openssl the script's Secrets,
 * laid out as the pods mount them, serve the TLS and tokens the flags ask for.
 */
class DeploymentManifestsTest {
    static final Path ROOT = repositoryRoot();
    private static final Path K8S = ROOT.resolve("k8s");
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** Values the downward API gives the pods, for resolving {@code $(NAME)} in their args. */
    private static final String POD_IP = "10.1.2.3";
    private static final String NAMESPACE = "flover-test";
    private static final Map<String, String> FIELD_REFS = Map.of(
            "status.podIP", POD_IP, "metadata.namespace", NAMESPACE, "metadata.name", "flover-pod-0");
    /** The gRPC health services each command's server registers: FloverServer and WorkerNode. */
    private static final Map<Class<?>, Set<String>> HEALTH_SERVICES = Map.of(
            CoordinatorCommand.class, Set.of("", GenerationGrpc.SERVICE_NAME),
            WorkerCommand.class, Set.of(""));

    // ---------------------------------------------------------------------------------------------------------
    // The deployments under test: the base as written, and each overlay as kubectl renders it.

    /** The documents of one deployment, and its name ("base", "cpu", "gpu"). */
    record Manifests(String name, List<JsonNode> docs) {
        Stream<JsonNode> ofKind(String kind) {
            return docs.stream().filter(d -> kind.equals(d.path("kind").asText()));
        }

        Stream<JsonNode> workloads() {
            return docs.stream().filter(d -> Set.of("Deployment", "StatefulSet").contains(d.path("kind").asText()));
        }

        Optional<JsonNode> find(String kind, String name) {
            return ofKind(kind).filter(d -> name.equals(d.path("metadata").path("name").asText())).findFirst();
        }

        JsonNode get(String kind, String name) {
            return find(kind, name).orElseThrow(() -> new AssertionError(this.name + ": no " + kind + " " + name));
        }

        /** The workload that runs {@code command} ("coordinator" or "worker"): exactly one. */
        Pod pod(String command) {
            List<Pod> pods = pods().stream().filter(p -> p.launch().command().equals(command)).toList();
            assertEquals(1, pods.size(), name + ": workloads running flover " + command);
            return pods.getFirst();
        }

        List<Pod> pods() {
            return workloads().map(w -> new Pod(this, w)).toList();
        }
    }

    /** A workload's pod template, with its one container's args parsed by the CLI. */
    record Pod(Manifests manifests, JsonNode workload) {
        String name() {
            return workload.path("kind").asText() + "/" + workload.path("metadata").path("name").asText();
        }

        JsonNode spec() {
            return workload.path("spec").path("template").path("spec");
        }

        Map<String, String> labels() {
            return strings(workload.path("spec").path("template").path("metadata").path("labels"));
        }

        Map<String, String> annotations() {
            return strings(workload.path("spec").path("template").path("metadata").path("annotations"));
        }

        JsonNode container() {
            JsonNode containers = spec().path("containers");
            assertEquals(1, containers.size(), name() + ": containers");
            return containers.get(0);
        }

        /** containerPort by port name. */
        Map<String, Integer> ports() {
            Map<String, Integer> ports = new LinkedHashMap<>();
            for (JsonNode p : container().path("ports")) {
                assertTrue(p.hasNonNull("name"), name() + ": every container port has a name");
                ports.put(p.path("name").asText(), p.path("containerPort").asInt());
            }
            return ports;
        }

        /** Parsed once per workload: a picocli model per parse is not free. */
        Launch launch() {
            return LAUNCHES.computeIfAbsent(workload, w -> Launch.of(this));
        }

        /** The value of environment variable {@code name} as the pod would see it, or null if it sets none. */
        String env(String name) {
            for (JsonNode e : container().path("env")) {
                if (!e.path("name").asText().equals(name)) {
                    continue;
                }
                if (e.has("value")) {
                    return e.path("value").asText();
                }
                JsonNode from = e.path("valueFrom");
                if (from.has("fieldRef")) {
                    String path = from.path("fieldRef").path("fieldPath").asText();
                    return Objects.requireNonNull(FIELD_REFS.get(path), name() + ": unexpected fieldRef " + path);
                }
                if (from.has("configMapKeyRef")) {
                    JsonNode ref = from.path("configMapKeyRef");
                    JsonNode data = manifests.get("ConfigMap", ref.path("name").asText()).path("data");
                    String key = ref.path("key").asText();
                    assertTrue(data.has(key), name() + ": env " + name + " reads key " + key + ", which ConfigMap "
                            + ref.path("name").asText() + " lacks");
                    return data.path(key).asText();
                }
                fail(name() + ": env " + name + " comes from " + from + "; expected a value, a fieldRef or a "
                        + "configMapKeyRef");
            }
            return null;
        }

        /** The claim and mount path of the volume mounted at a prefix of {@code path}. */
        Optional<Mount> mountOf(String path) {
            for (JsonNode m : container().path("volumeMounts")) {
                String at = m.path("mountPath").asText();
                if (path.equals(at) || path.startsWith(at.endsWith("/") ? at : at + "/")) {
                    JsonNode volume = volume(m.path("name").asText());
                    return Optional.of(new Mount(at, volume.path("persistentVolumeClaim").path("claimName").asText(null),
                            m.path("readOnly").asBoolean(false),
                            volume.path("persistentVolumeClaim").path("readOnly").asBoolean(false)));
                }
            }
            return Optional.empty();
        }

        /** The volume mount that holds {@code path} (the deepest, where mounts nest), and its volume. */
        Optional<Mounted> mountedAt(String path) {
            JsonNode found = null;
            for (JsonNode m : container().path("volumeMounts")) {
                String at = m.path("mountPath").asText();
                if ((path.equals(at) || path.startsWith(at.endsWith("/") ? at : at + "/"))
                        && (found == null || at.length() > found.path("mountPath").asText().length())) {
                    found = m;
                }
            }
            return Optional.ofNullable(found).map(m -> new Mounted(m, volume(m.path("name").asText())));
        }

        /** The pod's volumes of Secrets. */
        List<JsonNode> secretVolumes() {
            List<JsonNode> out = new ArrayList<>();
            spec().path("volumes").forEach(v -> {
                assertFalse(v.has("projected"), name() + ": projected volumes are not checked here");
                if (v.has("secret")) {
                    out.add(v);
                }
            });
            return out;
        }

        JsonNode volume(String name) {
            for (JsonNode v : spec().path("volumes")) {
                if (v.path("name").asText().equals(name)) {
                    return v;
                }
            }
            throw new AssertionError(name() + ": no volume " + name);
        }
    }

    private static final Map<JsonNode, Launch> LAUNCHES = java.util.Collections.synchronizedMap(new java.util.IdentityHashMap<>());

    record Mount(String path, String claim, boolean readOnlyMount, boolean readOnlyClaim) {
    }

    /** A container's volume mount and the pod's volume it mounts. */
    record Mounted(JsonNode mount, JsonNode volume) {
        String path() {
            return mount.path("mountPath").asText();
        }

        /**
         * The key of the Secret that {@code file} (under this mount) is, or null if the volume puts no key there:
         * with {@code items}, the key whose path it is; without, every key is a file named after it.
         */
        String secretKey(String file) {
            String relative = file.substring(path().length()).replaceFirst("^/+", "");
            JsonNode secret = volume.path("secret");
            if (!secret.has("items")) {
                return relative.contains("/") || relative.isEmpty() ? null : relative;
            }
            for (JsonNode item : secret.path("items")) {
                if (item.path("path").asText().equals(relative)) {
                    return item.path("key").asText();
                }
            }
            return null;
        }
    }

    /**
     * A container's args with {@code $(NAME)} resolved, parsed by the CLI into its command object; {@code files}:
     * the options that name a file or directory (picocli type Path), by option name.
     */
    record Launch(String command, List<String> args, Object options, Set<String> referencedEnv, Map<String, Path> files) {
        private static final Pattern REFERENCE = Pattern.compile("\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)");

        static Launch of(Pod pod) {
            JsonNode container = pod.container();
            assertFalse(container.has("command"), pod.name() + ": the image's entrypoint (the launcher) must run");
            List<String> raw = new ArrayList<>();
            container.path("args").forEach(a -> raw.add(a.asText()));
            assertFalse(raw.isEmpty(), pod.name() + ": no args");
            Set<String> referenced = new TreeSet<>();
            List<String> args = new ArrayList<>();
            for (String a : raw) {
                Matcher m = REFERENCE.matcher(a);
                StringBuilder resolved = new StringBuilder();
                while (m.find()) {
                    String value = pod.env(m.group(1));
                    assertNotNull(value, pod.name() + ": arg " + a + " uses $(" + m.group(1) + "), which the container "
                            + "does not set");
                    referenced.add(m.group(1));
                    m.appendReplacement(resolved, Matcher.quoteReplacement(value));
                }
                m.appendTail(resolved);
                args.add(resolved.toString());
            }
            CommandLine flover = new CommandLine(new Flover());
            CommandLine sub = flover.getSubcommands().get(args.getFirst());
            assertNotNull(sub, pod.name() + ": " + args.getFirst() + " is no flover command");
            CommandSpec spec = sub.getCommandSpec();
            for (String a : raw.subList(1, raw.size())) {
                if (a.startsWith("-")) {
                    String option = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
                    assertNotNull(spec.findOption(option), pod.name() + ": " + option + " is no option of flover "
                            + args.getFirst());
                }
            }
            CommandLine.ParseResult parsed;
            try {
                parsed = flover.parseArgs(args.toArray(String[]::new));
            } catch (CommandLine.ParameterException e) {
                throw new AssertionError(pod.name() + ": flover " + String.join(" ", args) + ": " + e.getMessage(), e);
            }
            Map<String, Path> files = new LinkedHashMap<>();
            for (CommandLine.Model.OptionSpec o : parsed.subcommand().matchedOptions()) {
                if (o.type() == Path.class) {
                    files.put(o.longestName(), o.getValue());
                }
            }
            return new Launch(args.getFirst(), args, parsed.subcommand().commandSpec().userObject(), referenced, files);
        }

        /** The cluster flags, from either command. */
        ClusterFlags cluster() {
            return options instanceof CoordinatorCommand c ? c.cluster : ((WorkerCommand) options).cluster;
        }

        MetricsFlags metrics() {
            return options instanceof CoordinatorCommand c ? c.metrics : ((WorkerCommand) options).metrics;
        }

        String advertiseHost() {
            return options instanceof CoordinatorCommand c ? c.advertiseHost : ((WorkerCommand) options).advertiseHost;
        }

        /** Whether the process's gRPC server (health included) speaks TLS: --tls-cert on either command. */
        boolean grpcTls() {
            return (options instanceof CoordinatorCommand c ? c.security.tlsCert : ((WorkerCommand) options).tlsCert) != null;
        }

        /** The port of the process's gRPC server (health included). */
        int grpcPort() {
            return options instanceof CoordinatorCommand c ? c.port : ((WorkerCommand) options).port;
        }

        /** Ports other than Flover's own pods must not reach. */
        Set<Integer> internalPorts() {
            Set<Integer> ports = new HashSet<>(Set.of(cluster().port));
            if (options instanceof WorkerCommand w) {
                ports.addAll(Set.of(w.port, w.collectivePort));
            }
            return ports;
        }

        /** Ports clients and Prometheus reach. */
        Set<Integer> publicPorts() {
            Set<Integer> ports = new HashSet<>(Set.of(metrics().port));
            if (options instanceof CoordinatorCommand c) {
                ports.addAll(Set.of(c.port, c.http.port));
            }
            return ports;
        }
    }

    static Stream<Named<Manifests>> deployments() {
        List<Named<Manifests>> all = new ArrayList<>(List.of(Named.of("base", base())));
        if (kubectl().isPresent()) {
            all.add(Named.of("overlay cpu", rendered("cpu")));
            all.add(Named.of("overlay gpu", rendered("gpu")));
            all.add(Named.of("overlay cpu-secure", rendered("cpu-secure")));
            for (String component : components()) {
                all.add(Named.of("overlay cpu + component " + component, withComponent("cpu", component)));
            }
        }
        return all.stream();
    }

    // ---------------------------------------------------------------------------------------------------------
    // Checks of every deployment.

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void selectorsMatchTheirPods(Manifests m) {
        List<Pod> pods = m.pods();
        assertEquals(2, pods.size(), m.name() + ": a coordinator and a worker workload");
        for (Pod p : pods) {
            Map<String, String> selector = matchLabels(p.workload().path("spec").path("selector"), p.name());
            assertFalse(selector.isEmpty(), p.name() + ": empty selector");
            assertTrue(selects(selector, p.labels()), p.name() + ": selector " + selector + " misses its labels "
                    + p.labels());
            for (Pod other : pods) {
                assertTrue(other == p || !selects(selector, other.labels()),
                        p.name() + "'s selector also selects " + other.name() + "'s pods");
            }
        }
        for (JsonNode s : m.ofKind("Service").toList()) {
            Map<String, String> selector = strings(s.path("spec").path("selector"));
            List<Pod> selected = pods.stream().filter(p -> selects(selector, p.labels())).toList();
            assertFalse(selector.isEmpty() || selected.isEmpty(), "Service " + name(s) + " selects no pods");
            for (JsonNode port : s.path("spec").path("ports")) {
                for (Pod p : selected) {
                    Integer target = targetPort(p, port.path("targetPort").isMissingNode() ? port.path("port")
                            : port.path("targetPort"));
                    assertNotNull(target, "Service " + name(s) + " port " + port + ": no such port on " + p.name());
                    assertEquals(port.path("port").asInt(), target, "Service " + name(s) + " forwards port "
                            + port.path("port").asInt() + " to another port number on " + p.name());
                }
            }
        }
        for (JsonNode pdb : m.ofKind("PodDisruptionBudget").toList()) {
            Map<String, String> selector = matchLabels(pdb.path("spec").path("selector"), name(pdb));
            assertTrue(pods.stream().anyMatch(p -> selects(selector, p.labels())), "PDB " + name(pdb) + " selects no pods");
        }
        assertEquals(1, m.ofKind("PodDisruptionBudget").count(), m.name() + ": PodDisruptionBudgets");
        Pod worker = m.pod("worker");
        JsonNode pdb = m.ofKind("PodDisruptionBudget").findFirst().orElseThrow();
        assertTrue(selects(matchLabels(pdb.path("spec").path("selector"), name(pdb)), worker.labels()),
                "the PodDisruptionBudget covers the workers");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void argsAreOptionsOfTheirCommandsAndPass(Manifests m) {
        Pod coordinatorPod = m.pod("coordinator");
        Pod workerPod = m.pod("worker");
        CoordinatorCommand c = (CoordinatorCommand) coordinatorPod.launch().options();
        WorkerCommand w = (WorkerCommand) workerPod.launch().options();
        // The checks the commands make before they start.
        c.scheduler.config();
        Flags.requirePort("--port", c.port);
        assertTrue(c.tensorParallel >= 1, "--tp");
        assertTrue(c.stepTimeoutMs >= 1 && c.loadTimeoutSeconds >= 1, "--step-timeout, --load-timeout");
        // Each throws, naming the flag, where the CLI would refuse it.
        w.kv.kvMemory(Device.parse("--device", w.device.spec));
        for (Pod p : List.of(coordinatorPod, workerPod)) {
            Launch l = p.launch();
            l.cluster().options(l.advertiseHost());
            assertEquals(POD_IP, l.advertiseHost(), p.name() + ": --advertise-host must be the pod IP (status.podIP)");
        }
        assertEquals(c.cluster.name, w.cluster.name, "--cluster-name of coordinator and workers");
        // Hazelcast's DNS discovery contacts every address behind the Service on this member's own cluster port.
        assertEquals(c.cluster.port, w.cluster.port, "--cluster-port of coordinator and workers");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void containerPortsAreThePortsTheProcessesBind(Manifests m) {
        CoordinatorCommand c = (CoordinatorCommand) m.pod("coordinator").launch().options();
        assertNotEquals(0, c.port, "coordinator --port must be fixed");
        assertNotNull(c.metrics.port, "coordinator --metrics-port");
        assertTrue(c.http.port != null && c.http.port > 0, "coordinator --http-port must be fixed");
        assertEquals(Map.of("grpc", c.port, "http", c.http.port, "metrics", c.metrics.port, "hazelcast", c.cluster.port),
                m.pod("coordinator").ports(), "coordinator container ports");
        WorkerCommand w = (WorkerCommand) m.pod("worker").launch().options();
        assertTrue(w.port != 0 && w.collectivePort != 0, "worker --port and --collective-port must be fixed");
        assertNotNull(w.metrics.port, "worker --metrics-port");
        assertEquals(Map.of("worker", w.port, "collectives", w.collectivePort, "metrics", w.metrics.port,
                "hazelcast", w.cluster.port), m.pod("worker").ports(), "worker container ports");
        JsonNode clientService = m.get("Service", "flover");
        assertEquals(c.port, servicePort(clientService, "grpc"), "Service flover's grpc port is the coordinator's --port");
        assertEquals(c.metrics.port, servicePort(clientService, "metrics"), "Service flover's metrics port");
        assertEquals(c.http.port, servicePort(clientService, "http"), "Service flover's http port is the coordinator's "
                + "--http-port");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void membersFindEachOtherThroughTheHeadlessService(Manifests m) {
        for (Pod p : m.pods()) {
            ClusterFlags cluster = p.launch().cluster();
            assertNotNull(cluster.kubernetesService, p.name() + ": --cluster-service");
            String serviceName = cluster.kubernetesService.split("\\.")[0];
            assertTrue(cluster.kubernetesService.matches(Pattern.quote(serviceName) + "(\\." + NAMESPACE
                    + "(\\.svc(\\..+)?)?)?"), p.name() + ": --cluster-service " + cluster.kubernetesService
                    + " is not SERVICE.NAMESPACE.svc.DOMAIN of the pod's namespace");
            JsonNode service = m.get("Service", serviceName);
            assertEquals("None", service.path("spec").path("clusterIP").asText(), serviceName + " must be headless");
            assertTrue(service.path("spec").path("publishNotReadyAddresses").asBoolean(false),
                    serviceName + " must list pods before they are ready: the coordinator is ready only once a group "
                            + "has formed through it");
            assertTrue(selects(strings(service.path("spec").path("selector")), p.labels()),
                    serviceName + " does not select " + p.name());
            assertEquals(cluster.port, servicePort(service, "hazelcast"), serviceName + "'s port is --cluster-port");
        }
        JsonNode statefulSet = m.pod("worker").workload();
        assertTrue(m.find("Service", statefulSet.path("spec").path("serviceName").asText()).isPresent(),
                "the worker StatefulSet's serviceName names a Service");
        JsonNode coordinator = m.pod("coordinator").workload();
        assertEquals(1, coordinator.path("spec").path("replicas").asInt(), "one coordinator");
        assertEquals("Recreate", coordinator.path("spec").path("strategy").path("type").asText(),
                "never two coordinators at once: both would claim the same workers");
    }

    /**
     * Probes ask what the servers answer, in a protocol the port speaks: gRPC health on a plaintext gRPC port (the
     * coordinator ready once a group serves, alive from its bind; workers alive and ready from their bind). On a
     * TLS port, where Kubernetes' gRPC probe cannot go, a TCP connection stands for the bind, and the coordinator's
     * readiness is GET /ready on its plaintext metrics port.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void probesAskTheServersInAProtocolTheirPortsSpeak(Manifests m) {
        for (Pod p : m.pods()) {
            Launch l = p.launch();
            boolean coordinator = l.options() instanceof CoordinatorCommand;
            JsonNode container = p.container();
            List<String> kinds = new ArrayList<>(List.of("livenessProbe", "readinessProbe"));
            if (!coordinator) {
                kinds.add("startupProbe");
            }
            for (String kind : kinds) {
                assertTrue(container.has(kind), p.name() + ": no " + kind);
            }
            for (String kind : List.of("startupProbe", "livenessProbe", "readinessProbe")) {
                JsonNode probe = container.path(kind);
                if (probe.isMissingNode()) {
                    continue;
                }
                String what = p.name() + " " + kind;
                List<String> handlers = new ArrayList<>();
                probe.fieldNames().forEachRemaining(f -> {
                    if (Set.of("grpc", "tcpSocket", "httpGet", "exec").contains(f)) {
                        handlers.add(f);
                    }
                });
                assertEquals(1, handlers.size(), what + ": one handler, not " + handlers);
                boolean coordinatorReadiness = coordinator && kind.equals("readinessProbe");
                switch (handlers.getFirst()) {
                    case "grpc" -> {
                        assertFalse(l.grpcTls(), what + ": Kubernetes' gRPC probe speaks no TLS, and port "
                                + l.grpcPort() + " serves TLS (--tls-cert)");
                        int port = probe.path("grpc").path("port").asInt();
                        assertTrue(p.ports().containsValue(port), what + ": port " + port + " is no container port");
                        assertEquals(l.grpcPort(), port, what + ": the gRPC server's port");
                        String service = probe.path("grpc").path("service").asText("");
                        assertTrue(HEALTH_SERVICES.get(l.options().getClass()).contains(service),
                                what + ": the server registers no health service '" + service + "'");
                        // Liveness: the process, alive from its bind; readiness of the coordinator: a group serves.
                        assertEquals(coordinatorReadiness ? GenerationGrpc.SERVICE_NAME : "", service, what + " service");
                    }
                    case "tcpSocket" -> {
                        assertEquals(Integer.valueOf(l.grpcPort()), targetPort(p, probe.path("tcpSocket").path("port")),
                                what + ": a connection to the gRPC server's port stands for its health ''");
                        assertFalse(coordinatorReadiness, what + ": the coordinator accepts connections long before "
                                + "a group serves; its readiness needs flover.v1.Generation's health or "
                                + MetricsEndpoint.READY_PATH);
                    }
                    case "httpGet" -> {
                        JsonNode get = probe.path("httpGet");
                        assertTrue(coordinatorReadiness, what + ": only the coordinator's readiness is served in HTTP ("
                                + MetricsEndpoint.READY_PATH + "; liveness there would restart a coordinator waiting "
                                + "for workers)");
                        assertEquals(l.metrics().port, targetPort(p, get.path("port")), what + ": the metrics port");
                        assertEquals(MetricsEndpoint.READY_PATH, get.path("path").asText(), what + " path");
                        assertEquals("HTTP", get.path("scheme").asText("HTTP"), what + ": the metrics port is plain HTTP");
                    }
                    default -> fail(what + ": " + handlers.getFirst() + " probes are not checked here");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void podsSetOnlyVariablesTheLauncherReadsOrTheirArgsUse(Manifests m) {
        Set<String> launcher = launcherVariables();
        for (Pod p : m.pods()) {
            JsonNode container = p.container();
            assertFalse(container.has("envFrom"), p.name() + ": envFrom would set every key of a source; name the "
                    + "ones the container reads");
            Set<String> used = p.launch().referencedEnv();
            for (JsonNode e : container.path("env")) {
                String name = e.path("name").asText();
                assertTrue(launcher.contains(name) || used.contains(name), p.name() + ": env " + name
                        + " is neither read by the launcher " + launcher + " nor used in the args");
            }
            // Service links would add FLOVER_SERVICE_HOST, FLOVER_PORT, ... for the Service "flover".
            assertFalse(p.spec().path("enableServiceLinks").asBoolean(true), p.name() + ": enableServiceLinks");
        }
        Set<String> keysRead = new HashSet<>();
        for (Pod p : m.pods()) {
            for (JsonNode e : p.container().path("env")) {
                JsonNode ref = e.path("valueFrom").path("configMapKeyRef");
                if (!ref.isMissingNode()) {
                    keysRead.add(ref.path("key").asText());
                }
            }
        }
        m.ofKind("ConfigMap").forEach(cm -> cm.path("data").fieldNames().forEachRemaining(key ->
                assertTrue(keysRead.contains(key), "ConfigMap " + name(cm) + ": no pod reads " + key)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void metricsAreAnnotatedForPrometheus(Manifests m) {
        for (Pod p : m.pods()) {
            Map<String, String> a = p.annotations();
            assertEquals("true", a.get("prometheus.io/scrape"), p.name());
            assertEquals(String.valueOf(p.launch().metrics().port), a.get("prometheus.io/port"), p.name());
            assertEquals("/metrics", a.get("prometheus.io/path"), p.name());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void everyPodMountsTheModelReadOnlyWhereTheCoordinatorSaysItIs(Manifests m) {
        Pod coordinator = m.pod("coordinator");
        String model = ((CoordinatorCommand) coordinator.launch().options()).model.toString();
        assertTrue(model.startsWith("/"), "coordinator --model must be absolute: the workers get this path");
        for (Pod p : m.pods()) {
            Mount mount = p.mountOf(model).orElseThrow(() -> new AssertionError(p.name() + " mounts nothing at " + model));
            assertNotNull(mount.claim(), p.name() + ": the model volume is a PersistentVolumeClaim");
            assertTrue(mount.readOnlyMount() && mount.readOnlyClaim(), p.name() + ": the model volume is read-only");
            assertTrue(m.find("PersistentVolumeClaim", mount.claim()).isPresent(), "no PVC " + mount.claim());
            assertEquals(coordinator.mountOf(model).orElseThrow(), mount, p.name() + ": same claim at the same path");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void podsRunAsTheImagesUserWithoutApiAccess(Manifests m) throws IOException {
        Set<Integer> imageUsers = new TreeSet<>();
        for (Path dockerfile : dockerfiles()) {
            Matcher user = Pattern.compile("(?m)^USER\\s+(\\d+)").matcher(Files.readString(dockerfile));
            assertTrue(user.find(), dockerfile + ": no numeric USER");
            imageUsers.add(Integer.parseInt(user.group(1)));
        }
        assertEquals(1, imageUsers.size(), "the images' users");
        for (Pod p : m.pods()) {
            JsonNode security = p.spec().path("securityContext");
            assertTrue(security.path("runAsNonRoot").asBoolean(false), p.name() + ": runAsNonRoot");
            assertEquals(imageUsers.iterator().next(), security.path("runAsUser").asInt(), p.name() + ": runAsUser");
            String account = p.spec().path("serviceAccountName").asText();
            JsonNode sa = m.get("ServiceAccount", account);
            assertFalse(p.spec().path("automountServiceAccountToken").asBoolean(true)
                    || sa.path("automountServiceAccountToken").asBoolean(true),
                    p.name() + ": DNS discovery needs no API token");
        }
        // Hazelcast's DNS mode reads no API: a Role would be a grant nothing uses.
        assertEquals(0, m.ofKind("Role").count() + m.ofKind("ClusterRole").count(), m.name() + ": Roles");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void networkPolicyKeepsWorkerAndClusterPortsInternal(Manifests m) {
        List<JsonNode> policies = m.ofKind("NetworkPolicy").toList();
        List<Pod> pods = m.pods();
        Map<String, String> floverLabels = commonLabels(pods);
        assertFalse(floverLabels.isEmpty(), "the Flover pods share no label");
        for (Pod p : pods) {
            List<JsonNode> mine = policies.stream()
                    .filter(np -> selects(matchLabels(np.path("spec").path("podSelector"), name(np)), p.labels()))
                    .filter(np -> np.path("spec").path("policyTypes").toString().contains("Ingress"))
                    .toList();
            assertFalse(mine.isEmpty(), p.name() + ": no NetworkPolicy isolates its ingress");
            Launch l = p.launch();
            for (JsonNode np : mine) {
                for (JsonNode rule : np.path("spec").path("ingress")) {
                    if (internalOnly(rule, floverLabels)) {
                        continue;
                    }
                    assertTrue(rule.path("ports").size() > 0, "NetworkPolicy " + name(np) + ": a rule open to other "
                            + "pods admits every port");
                    for (JsonNode port : rule.path("ports")) {
                        for (int internal : l.internalPorts()) {
                            assertFalse(covers(p, port, internal), "NetworkPolicy " + name(np) + " opens " + p.name()
                                    + "'s internal port " + internal + " to non-Flover pods");
                        }
                    }
                }
            }
            // ... and admits what the cluster and its clients need.
            for (int port : l.publicPorts()) {
                assertTrue(admits(mine, p, port, null, floverLabels), p.name() + ": port " + port + " closed to clients");
            }
            // Membership between every pair; steps from the coordinator to workers; all-reduces between workers.
            for (Pod from : pods) {
                List<Integer> needed = new ArrayList<>(List.of(l.cluster().port));
                if (l.options() instanceof WorkerCommand w) {
                    needed.add(from.launch().command().equals("coordinator") ? w.port : w.collectivePort);
                }
                for (int port : needed) {
                    assertTrue(admits(mine, p, port, from, floverLabels), p.name() + ": port " + port + " closed to "
                            + from.name());
                }
            }
        }
    }

    /**
     * The read-only root file system has none of the files flags name: each is on a volume. A file on a Secret's
     * volume is a key the volume puts there, of a Secret that deploy/k8s-secrets.sh makes with that key; and every
     * Secret a pod mounts is read by one of its flags.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void filesFlagsReadAreOnVolumesAndSecretFilesAreKeysOfTheirSecrets(Manifests m) {
        for (Pod p : m.pods()) {
            Set<String> secretsRead = new TreeSet<>();
            for (Map.Entry<String, Path> f : p.launch().files().entrySet()) {
                String what = p.name() + ": " + f.getKey() + "=" + f.getValue();
                String file = f.getValue().toString();
                assertTrue(file.startsWith("/"), what + " is not absolute");
                Mounted mounted = p.mountedAt(file).orElseThrow(() -> new AssertionError(what + " is on no volume"));
                JsonNode secret = mounted.volume().path("secret");
                if (secret.isMissingNode()) {
                    continue;
                }
                String name = secret.path("secretName").asText();
                String key = mounted.secretKey(file);
                assertNotNull(key, what + ": the volume of Secret " + name + " at " + mounted.path() + " puts no key there");
                if (opensslAndKubectl()) {
                    Map<String, byte[]> made = scriptSecrets().get(name);
                    assertNotNull(made, what + ": deploy/k8s-secrets.sh makes no Secret " + name);
                    assertTrue(made.containsKey(key), what + ": Secret " + name + " as deploy/k8s-secrets.sh makes it has "
                            + "no key " + key + ", only " + made.keySet());
                }
                secretsRead.add(mounted.volume().path("name").asText());
            }
            for (JsonNode v : p.secretVolumes()) {
                assertTrue(secretsRead.contains(v.path("name").asText()), p.name() + ": Secret "
                        + v.path("secret").path("secretName").asText() + " is mounted, but no flag reads it");
            }
        }
    }

    /**
     * Secrets are mounted read-only and only the pod's user reads them: the kubelet makes their files root's, in
     * the group fsGroup (the container's user is in it), with the volume's mode. They are required: a pod whose
     * Secret is missing does not start, rather than starting without its credentials.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void secretsAreMountedReadOnlyForThePodsUserOnly(Manifests m) {
        for (Pod p : m.pods()) {
            JsonNode security = p.spec().path("securityContext");
            for (JsonNode v : p.secretVolumes()) {
                JsonNode secret = v.path("secret");
                String what = p.name() + ": volume " + v.path("name").asText() + " (Secret " + secret.path("secretName").asText() + ")";
                assertFalse(secret.path("optional").asBoolean(false), what + " is optional");
                int mounts = 0;
                for (JsonNode mount : p.container().path("volumeMounts")) {
                    if (mount.path("name").asText().equals(v.path("name").asText())) {
                        mounts++;
                        assertTrue(mount.path("readOnly").asBoolean(false), what + ": mounted read-write at "
                                + mount.path("mountPath").asText());
                    }
                }
                assertTrue(mounts > 0, what + " is mounted nowhere");
                List<Integer> modes = new ArrayList<>(List.of(secret.path("defaultMode").asInt(0644)));
                secret.path("items").forEach(i -> {
                    if (i.has("mode")) {
                        modes.add(i.path("mode").asInt());
                    }
                });
                for (int mode : modes) {
                    String octal = what + ": mode 0" + Integer.toOctalString(mode);
                    assertEquals(0, mode & 0007, octal + " lets other users read");
                    assertEquals(0, mode & 0222, octal + " is writable");
                    if (security.path("runAsUser").asInt(0) != 0) {
                        assertNotEquals(0, mode & 0040, octal + ": the files are root's; the container's user ("
                                + security.path("runAsUser").asInt() + ") reads them through the group only");
                        assertTrue(security.has("fsGroup"), what + ": without fsGroup the files are in root's group, "
                                + "which the container's user is not in");
                    }
                }
            }
        }
    }

    /**
     * The coordinator speaks to workers as they listen: TLS to a TLS port, a certificate where one is required, and
     * (workers being reached at pod IPs) a name to check their certificates for; each side's TLS flags pass the
     * checks its command makes before it reads the files.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void workerTlsIsTheSameOnBothSides(Manifests m) {
        CoordinatorCommand c = (CoordinatorCommand) m.pod("coordinator").launch().options();
        WorkerCommand w = (WorkerCommand) m.pod("worker").launch().options();
        assertEquals(w.tlsCert != null, c.workerCa != null, "workers serve TLS (--tls-cert) exactly when the "
                + "coordinator reaches them over TLS (--worker-tls-ca)");
        assertEquals(w.clientCa != null, c.workerCert != null, "workers require a client certificate "
                + "(--tls-client-ca) exactly when the coordinator presents one (--worker-tls-cert)");
        // The checks of Tls and of the commands (CoordinatorCommand.call, Tls.server, Tls.client), short of reading.
        new Tls(w.tlsCert, w.tlsKey, w.clientCa);
        new Tls(c.workerCert, c.workerKey, c.workerCa);
        new Tls(c.security.tlsCert, c.security.tlsKey, c.security.clientCa);
        assertTrue(w.clientCa == null || w.tlsCert != null, "worker --tls-client-ca needs --tls-cert");
        assertTrue(c.security.clientCa == null || c.security.tlsCert != null, "coordinator --tls-client-ca needs --tls-cert");
        assertTrue(c.workerCert == null || c.workerCa != null, "--worker-tls-cert needs --worker-tls-ca");
        assertTrue(c.workerServerName == null || c.workerCa != null, "--worker-tls-server-name needs --worker-tls-ca");
        if (c.workerCa != null && POD_IP.equals(w.advertiseHost)) {
            assertNotNull(c.workerServerName, "workers are reached at their pod IPs (--advertise-host), which no "
                    + "certificate in a Secret names: the coordinator needs --worker-tls-server-name");
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Checks of the files themselves, and of the overlays.

    @Test
    void everyManifestLoadsAndEveryKustomizationNamesFilesThatExist() throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.walk(K8S)) {
            files = s.filter(f -> f.toString().endsWith(".yaml")).sorted().toList();
        }
        assertTrue(files.size() >= 5, "manifests under " + K8S);
        Set<Path> referenced = new HashSet<>();
        Set<Path> jsonPatches = new HashSet<>();
        for (Path f : files.stream().filter(f -> f.getFileName().toString().equals("kustomization.yaml")).toList()) {
            JsonNode doc = load(f).getFirst();
            String kind = doc.path("kind").asText();
            assertTrue(kind.equals("Kustomization") || kind.equals("Component"), f + ": kind " + kind);
            assertEquals(kind.equals("Component") ? "kustomize.config.k8s.io/v1alpha1" : "kustomize.config.k8s.io/v1beta1",
                    doc.path("apiVersion").asText(), f + ": apiVersion of a " + kind);
            Path dir = f.getParent();
            for (JsonNode r : doc.path("resources")) {
                Path target = dir.resolve(r.asText()).normalize();
                assertTrue(Files.isRegularFile(target) || Files.isRegularFile(target.resolve("kustomization.yaml")),
                        f + ": resource " + r.asText() + " does not exist");
                referenced.add(target);
            }
            for (JsonNode c : doc.path("components")) {
                Path target = dir.resolve(c.asText()).resolve("kustomization.yaml").normalize();
                assertTrue(Files.isRegularFile(target), f + ": component " + c.asText() + " does not exist");
                assertEquals("Component", load(target).getFirst().path("kind").asText(), f + ": component " + c.asText());
            }
            for (JsonNode p : doc.path("patches")) {
                assertTrue(p.has("path"), f + ": inline patches are not checked here; name a file");
                Path target = dir.resolve(p.path("path").asText()).normalize();
                assertTrue(Files.isRegularFile(target), f + ": patch " + target + " does not exist");
                referenced.add(target);
                if (p.has("target")) {
                    jsonPatches.add(target);
                }
            }
            for (JsonNode g : doc.path("configMapGenerator")) {
                for (JsonNode e : g.path("envs")) {
                    assertTrue(Files.isRegularFile(dir.resolve(e.asText())), f + ": env file " + e.asText());
                }
            }
        }
        for (Path f : files) {
            if (f.getFileName().toString().equals("kustomization.yaml")) {
                continue;
            }
            assertTrue(referenced.contains(f.normalize()), f + " is in no kustomization");
            JsonNode first = YAML.readTree(f.toFile());
            if (jsonPatches.contains(f.normalize()) && first.isArray()) {
                // A JSON patch (RFC 6902) of its target: a list of operations.
                for (JsonNode op : first) {
                    assertTrue(Set.of("add", "remove", "replace", "move", "copy", "test").contains(op.path("op").asText()),
                            f + ": no JSON patch operation " + op);
                    assertTrue(op.path("path").asText().startsWith("/"), f + ": no JSON pointer in " + op);
                }
                continue;
            }
            for (JsonNode doc : load(f)) {
                assertTrue(doc.hasNonNull("apiVersion") && doc.hasNonNull("kind"), f + ": a document without kind");
            }
        }
    }

    /**
     * The example overlay cpu-secure is the cpu overlay with every component: the flags each adds, reading the
     * Secrets it mounts, and nothing else changed in the args or the NetworkPolicy; the cpu overlay itself stays
     * plaintext and needs no Secret. deploy/README.md tells how to enable each component and make the Secrets.
     */
    @Test
    void theSecureOverlayIsTheCpuOverlayWithEveryComponent() throws IOException {
        assumeKubectl();
        Manifests cpu = rendered("cpu");
        Manifests secure = rendered("cpu-secure");
        for (Pod p : cpu.pods()) {
            assertTrue(p.secretVolumes().isEmpty(), "cpu overlay, " + p.name() + ": mounts a Secret");
            assertFalse(p.launch().grpcTls(), "cpu overlay, " + p.name() + ": serves TLS");
        }
        Map<String, Set<String>> flags = Map.of(
                "coordinator", Set.of("--tls-cert", "--tls-key", "--auth-tokens", "--worker-tls-ca", "--worker-tls-cert",
                        "--worker-tls-key", "--worker-tls-server-name"),
                "worker", Set.of("--tls-cert", "--tls-key", "--tls-client-ca"));
        Map<String, Set<String>> secrets = Map.of(
                "coordinator", Set.of("flover-client-tls", "flover-auth-tokens", "flover-internal-tls"),
                "worker", Set.of("flover-internal-tls"));
        for (String command : List.of("coordinator", "worker")) {
            List<String> plain = cpu.pod(command).launch().args();
            List<String> args = secure.pod(command).launch().args();
            assertTrue(args.size() > plain.size(), command + ": no flags added");
            assertEquals(plain, args.subList(0, plain.size()), command + ": the cpu overlay's args, then the components'");
            Set<String> added = new TreeSet<>();
            args.subList(plain.size(), args.size()).forEach(a -> added.add(a.split("=", 2)[0]));
            assertEquals(new TreeSet<>(flags.get(command)), added, command + ": flags the components add");
            Set<String> mounted = new TreeSet<>();
            secure.pod(command).secretVolumes().forEach(v -> mounted.add(v.path("secret").path("secretName").asText()));
            assertEquals(new TreeSet<>(secrets.get(command)), mounted, command + ": Secrets mounted");
        }
        assertEquals(cpu.ofKind("NetworkPolicy").toList(), secure.ofKind("NetworkPolicy").toList(),
                "the components leave the NetworkPolicy as it is");
        assertEquals(cpu.ofKind("Service").toList(), secure.ofKind("Service").toList(), "... and the Services");

        Path overlay = K8S.resolve("overlays/cpu-secure");
        Set<String> listed = new TreeSet<>();
        load(overlay.resolve("kustomization.yaml")).getFirst().path("components").forEach(c ->
                listed.add(K8S.resolve("components").relativize(overlay.resolve(c.asText()).normalize()).toString()));
        assertEquals(new TreeSet<>(components()), listed, "cpu-secure enables every component");
        String readme = Files.readString(ROOT.resolve("deploy/README.md"));
        for (String component : components()) {
            assertTrue(readme.contains("../../components/" + component), "deploy/README.md: how to enable " + component);
        }
        assertTrue(readme.contains("deploy/k8s-secrets.sh"), "deploy/README.md: how to make the Secrets");
    }

    /**
     * The Secrets as deploy/k8s-secrets.sh makes them, mounted as the secure overlay mounts them, work with the
     * flags it passes: a worker serving its port as its flags say admits the coordinator as its flags say, at an
     * address (as the coordinator reaches pods) and only with the coordinator's certificate; the coordinator's
     * client API takes a client that trusts the script's CA, reaches it by the Service's names and sends its token,
     * and refuses one without the token.
     */
    @Test
    void theScriptsSecretsWorkWithTheSecureOverlaysFlags(@TempDir Path tmp) throws Exception {
        assumeKubectl();
        Assumptions.assumeTrue(opensslAndKubectl(), "openssl is not on the PATH, so deploy/k8s-secrets.sh cannot run");
        Manifests secure = rendered("cpu-secure");
        CoordinatorCommand c = (CoordinatorCommand) secure.pod("coordinator").launch().options();
        WorkerCommand w = (WorkerCommand) secure.pod("worker").launch().options();
        assertNotNull(w.tlsCert, "cpu-secure: workers serve TLS");
        assertNotNull(c.security.tlsCert, "cpu-secure: the client API serves TLS");
        assertNotNull(c.security.tokens, "cpu-secure: the client API requires tokens");
        java.util.function.UnaryOperator<Path> inCoordinator = podFiles(secure.pod("coordinator"), tmp.resolve("coordinator"));
        java.util.function.UnaryOperator<Path> inWorker = podFiles(secure.pod("worker"), tmp.resolve("worker"));
        for (Map<String, byte[]> secret : scriptSecrets().values()) {
            if (secret.containsKey("tls.key")) {
                assertTrue(new String(secret.get("tls.key"), StandardCharsets.US_ASCII).startsWith("-----BEGIN PRIVATE KEY-----"),
                        "the flags read PKCS#8 keys");
            }
        }

        HealthStatusManager health = new HealthStatusManager();
        Server worker = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0),
                        new Tls(inWorker.apply(w.tlsCert), inWorker.apply(w.tlsKey), inWorker.apply(w.clientCa)).server())
                .addService(health.getHealthService()).build().start();
        try {
            String address = "127.0.0.1:" + worker.getPort();
            Tls toWorkers = new Tls(inCoordinator.apply(c.workerCert), inCoordinator.apply(c.workerKey),
                    inCoordinator.apply(c.workerCa));
            assertEquals(Status.Code.OK, healthOf(WorkerGroups.channel(address, toWorkers, c.workerServerName)),
                    "the coordinator reaches a worker over mutual TLS");
            assertEquals(Status.Code.UNAVAILABLE, healthOf(WorkerGroups.channel(address, toWorkers, null)),
                    "the worker's certificate names no address");
            assertEquals(Status.Code.UNAVAILABLE, healthOf(WorkerGroups.channel(address,
                    new Tls(null, null, inCoordinator.apply(c.workerCa)), c.workerServerName)),
                    "a worker admits only a client with a certificate from its CA");
        } finally {
            worker.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }

        SecurityFlags security = new SecurityFlags();
        security.tlsCert = inCoordinator.apply(c.security.tlsCert);
        security.tlsKey = inCoordinator.apply(c.security.tlsKey);
        security.clientCa = inCoordinator.apply(c.security.clientCa);
        security.tokens = inCoordinator.apply(c.security.tokens);
        try (FloverServer server = EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"),
                "127.0.0.1", 0, 1, 1, 4 << 20, SchedulerConfig.defaults(new Policy.Fusion())), ServingMetrics.none(),
                security.security())) {
            for (String name : List.of("localhost", "flover", "flover." + NAMESPACE + ".svc")) {
                ClientFlags client = new ClientFlags();
                client.tlsCa = scriptDir().resolve("ca.crt");
                client.tokenFile = scriptDir().resolve("tokens");
                assertEquals(Status.Code.OK, listModels(client.channel("127.0.0.1:" + server.port())
                        .overrideAuthority(name + ":" + server.port()).build()), "a client reaching " + name);
            }
            ClientFlags noToken = new ClientFlags();
            noToken.tlsCa = scriptDir().resolve("ca.crt");
            assertEquals(Status.Code.UNAUTHENTICATED, listModels(noToken.channel("localhost:" + server.port()).build()));
        }
    }

    @Test
    void theGpuOverlayRequestsGpusForTheWorkers() throws IOException {
        JsonNode patch = load(K8S.resolve("overlays/gpu/worker-gpu.yaml")).getFirst();
        assertEquals("StatefulSet", patch.path("kind").asText());
        assertEquals(base().pod("worker").workload().path("metadata").path("name").asText(),
                patch.path("metadata").path("name").asText(), "the patch's target");
        JsonNode container = patch.path("spec").path("template").path("spec").path("containers").get(0);
        assertEquals("worker", container.path("name").asText());
        assertTrue(container.path("resources").path("limits").path("nvidia.com/gpu").asInt() >= 1, "nvidia.com/gpu limit");
    }

    @Test
    void bothOverlaysBuild() {
        Optional<String> kubectl = kubectl();
        Assumptions.assumeTrue(kubectl.isPresent(), "kubectl (1.21 or newer) is not on the PATH, so the overlays "
                + "are not rendered here (.ci/run installs it)");
        Manifests cpu = rendered("cpu");
        Manifests gpu = rendered("gpu");
        assertEquals(null, gpuLimit(cpu.pod("worker")), "the cpu overlay asks for no GPU");
        assertEquals(null, gpuLimit(gpu.pod("coordinator")), "the coordinator needs no GPU");
        String gpus = gpuLimit(gpu.pod("worker"));
        assertNotNull(gpus, "the gpu overlay's workers request nvidia.com/gpu");
        assertTrue(Integer.parseInt(gpus) >= 1, "nvidia.com/gpu " + gpus);
        assertTrue(gpu.pod("worker").container().path("image").asText().contains("cuda"), "the workers' CUDA image");
        assertFalse(cpu.pod("worker").container().path("image").asText().contains("cuda"), "cpu workers' image");
        WorkerCommand gpuWorker = (WorkerCommand) gpu.pod("worker").launch().options();
        WorkerCommand cpuWorker = (WorkerCommand) cpu.pod("worker").launch().options();
        Device onGpu = Device.parse("--device", gpuWorker.device.spec);
        assertEquals(new Device(true, 0), onGpu, "the gpu overlay's workers run on their GPU");
        assertTrue(gpuWorker.kv.kvMemory(onGpu).gpuFraction() > 0, "GPU workers size their KV cache by the GPU");
        assertEquals(Device.CPU, Device.parse("--device", cpuWorker.device.spec), "cpu workers");
    }

    @Test
    void theLocalClusterPassesEverySettingOfTheConfigMap() throws IOException {
        String script = Files.readString(ROOT.resolve("deploy/local-cluster.sh"));
        assertTrue(script.contains("k8s/base/flover.env"), "local-cluster.sh reads the ConfigMap's source");
        for (String key : envFile(K8S.resolve("base/flover.env")).keySet()) {
            assertTrue(script.contains("\"$" + key + "\""), "local-cluster.sh does not pass " + key);
        }
    }

    @Test
    void theImagesRunTheLauncherWithVariablesItReads() throws IOException {
        Set<String> launcher = launcherVariables();
        for (Path dockerfile : dockerfiles()) {
            String text = Files.readString(dockerfile);
            Matcher entry = Pattern.compile("(?m)^ENTRYPOINT\\s+\\[\\s*\"([^\"]+)\"").matcher(text);
            assertTrue(entry.find() && entry.group(1).endsWith("/flover"), dockerfile + ": the launcher is the entrypoint");
            Matcher env = Pattern.compile("\\b(FLOVER_[A-Z0-9_]+)=").matcher(text);
            while (env.find()) {
                assertTrue(launcher.contains(env.group(1)), dockerfile + ": " + env.group(1) + " is no launcher variable");
            }
        }
    }

    /** The images and the GPU check kit ship the same Java runtime: one script cuts it, and neither runs jlink. */
    @Test
    void theImagesAndTheGpuCheckKitCutTheirJavaRuntimeWithOneScript() throws IOException {
        for (String script : List.of("deploy/image.sh", "deploy/gpu-check/pack.sh")) {
            String text = Files.readString(ROOT.resolve(script));
            assertTrue(text.contains("\"$ROOT/deploy/java-runtime.sh\""), script + " runs deploy/java-runtime.sh");
            assertFalse(Pattern.compile("bin/jlink\"?\\s+-").matcher(text).find(), script + " runs jlink itself");
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Loading.

    /** The base's resources, with the ConfigMap its generator makes (under its plain name; kustomize adds a hash). */
    static Manifests base() {
        Path dir = K8S.resolve("base");
        JsonNode kustomization = load(dir.resolve("kustomization.yaml")).getFirst();
        List<JsonNode> docs = new ArrayList<>();
        kustomization.path("resources").forEach(r -> docs.addAll(load(dir.resolve(r.asText()))));
        for (JsonNode g : kustomization.path("configMapGenerator")) {
            ObjectNode cm = JsonNodeFactory.instance.objectNode().put("apiVersion", "v1").put("kind", "ConfigMap");
            cm.putObject("metadata").put("name", g.path("name").asText());
            ObjectNode data = cm.putObject("data");
            g.path("envs").forEach(e -> envFile(dir.resolve(e.asText())).forEach(data::put));
            g.path("literals").forEach(l -> data.put(l.asText().split("=", 2)[0], l.asText().split("=", 2)[1]));
            docs.add(cm);
        }
        return new Manifests("base", docs);
    }

    private static final Map<String, Manifests> RENDERED = new java.util.concurrent.ConcurrentHashMap<>();

    static Manifests rendered(String overlay) {
        return RENDERED.computeIfAbsent(overlay, o -> render(o, K8S.resolve("overlays").resolve(o)));
    }

    /** {@code overlay} with {@code component} of k8s/components added, as an operator's overlay would add it. */
    static Manifests withComponent(String overlay, String component) {
        return RENDERED.computeIfAbsent(overlay + " + " + component, name -> {
            try {
                Path dir = Files.createTempDirectory("flover-kustomize");
                try {
                    // kustomize takes no absolute paths: reach k8s/ relatively from the temporary directory.
                    Path k8s = dir.relativize(K8S);
                    Files.writeString(dir.resolve("kustomization.yaml"), String.join("\n",
                            "apiVersion: kustomize.config.k8s.io/v1beta1",
                            "kind: Kustomization",
                            "resources:",
                            "  - " + k8s.resolve("overlays").resolve(overlay),
                            "components:",
                            "  - " + k8s.resolve("components").resolve(component), ""));
                    return render(name, dir);
                } finally {
                    Files.deleteIfExists(dir.resolve("kustomization.yaml"));
                    Files.deleteIfExists(dir);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    private static Manifests render(String name, Path dir) {
        String yaml = run(kubectl().orElseThrow(), "kustomize", dir.toString());
        try {
            return new Manifests(name, YAML.readerFor(JsonNode.class).<JsonNode>readValues(yaml).readAll());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The Kustomize components under k8s/components, by directory name. */
    static List<String> components() {
        try (Stream<Path> s = Files.list(K8S.resolve("components"))) {
            List<String> names = s.filter(d -> Files.isRegularFile(d.resolve("kustomization.yaml")))
                    .map(d -> d.getFileName().toString()).sorted().toList();
            assertFalse(names.isEmpty(), "no components under k8s/components");
            return names;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void assumeKubectl() {
        Assumptions.assumeTrue(kubectl().isPresent(), "kubectl (1.21 or newer) is not on the PATH, so the overlays "
                + "are not rendered here (.ci/run installs it)");
    }

    /** Whether deploy/k8s-secrets.sh can run here: it needs openssl, and kubectl to write the Secrets. */
    static boolean opensslAndKubectl() {
        if (kubectl().isEmpty()) {
            return false;
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir.isEmpty() ? "." : dir, "openssl"))) {
                return true;
            }
        }
        return false;
    }

    private static Path scriptOut;
    private static Map<String, Map<String, byte[]>> scriptSecrets;

    /** Where deploy/k8s-secrets.sh wrote its files, run once (for the namespace the pods here are in). */
    static synchronized Path scriptDir() {
        if (scriptOut == null) {
            try {
                Path out = Files.createTempDirectory("flover-k8s-secrets");
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(out)));
                run(ROOT.resolve("deploy/k8s-secrets.sh").toString(), "--out", out.toString(), "--namespace", NAMESPACE);
                scriptOut = out;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return scriptOut;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // a temporary directory: what is left, the system's cleaning takes
        }
    }

    /** The Secrets deploy/k8s-secrets.sh makes: each one's keys and their (decoded) values, by Secret name. */
    static synchronized Map<String, Map<String, byte[]>> scriptSecrets() {
        if (scriptSecrets == null) {
            Map<String, Map<String, byte[]>> secrets = new TreeMap<>();
            for (JsonNode doc : load(scriptDir().resolve("secrets.yaml"))) {
                assertEquals("Secret", doc.path("kind").asText(), "secrets.yaml holds Secrets only");
                Map<String, byte[]> data = new TreeMap<>();
                doc.path("data").properties().forEach(e -> data.put(e.getKey(), Base64.getDecoder().decode(e.getValue().asText())));
                secrets.put(name(doc), data);
            }
            scriptSecrets = secrets;
        }
        return scriptSecrets;
    }

    /**
     * The files of {@code pod}'s Secret volumes as the kubelet would lay them out, with the Secrets of
     * deploy/k8s-secrets.sh, under {@code root}; returns where a path in the container is under root (null: null).
     */
    static java.util.function.UnaryOperator<Path> podFiles(Pod pod, Path root) throws IOException {
        for (JsonNode v : pod.secretVolumes()) {
            String secretName = v.path("secret").path("secretName").asText();
            Map<String, byte[]> data = scriptSecrets().get(secretName);
            assertNotNull(data, "deploy/k8s-secrets.sh makes no Secret " + secretName);
            Map<String, String> files = new LinkedHashMap<>();
            if (v.path("secret").has("items")) {
                v.path("secret").path("items").forEach(i -> files.put(i.path("key").asText(), i.path("path").asText()));
            } else {
                data.keySet().forEach(k -> files.put(k, k));
            }
            for (JsonNode mount : pod.container().path("volumeMounts")) {
                if (!mount.path("name").asText().equals(v.path("name").asText())) {
                    continue;
                }
                for (Map.Entry<String, String> f : files.entrySet()) {
                    byte[] value = data.get(f.getKey());
                    assertNotNull(value, "Secret " + secretName + " has no key " + f.getKey());
                    Path file = root.resolve(mount.path("mountPath").asText().substring(1)).resolve(f.getValue());
                    Files.createDirectories(file.getParent());
                    Files.write(file, value);
                }
            }
        }
        return path -> path == null ? null : root.resolve(path.toString().substring(1));
    }

    /** What gRPC health answers on {@code channel} (then closed): OK, or the status of the failure. */
    static Status.Code healthOf(ManagedChannel channel) throws InterruptedException {
        try {
            HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance());
            return Status.Code.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** The status of ListModels on {@code channel} (then closed). */
    static Status.Code listModels(ManagedChannel channel) throws InterruptedException {
        try {
            GenerationGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .listModels(ListModelsRequest.getDefaultInstance());
            return Status.Code.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus().getCode();
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static Optional<String> kubectlFound;

    /** kubectl on the PATH, if it is recent enough to embed kustomize v4 or later (1.21+). */
    static synchronized Optional<String> kubectl() {
        if (kubectlFound == null) {
            kubectlFound = Optional.empty();
            for (String dir : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
                Path candidate = Path.of(dir.isEmpty() ? "." : dir, "kubectl");
                if (Files.isExecutable(candidate)) {
                    Matcher v = Pattern.compile("v1\\.(\\d+)").matcher(run(candidate.toString(), "version", "--client"));
                    if (v.find() && Integer.parseInt(v.group(1)) >= 21) {
                        kubectlFound = Optional.of(candidate.toString());
                    }
                    break;
                }
            }
        }
        return kubectlFound;
    }

    private static String run(String... command) {
        try {
            Path err = Files.createTempFile("flover-kubectl", ".err");
            try {
                Process p = new ProcessBuilder(command).redirectError(err.toFile()).start();
                p.getOutputStream().close();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(p.waitFor(60, TimeUnit.SECONDS), String.join(" ", command) + " did not finish");
                assertEquals(0, p.exitValue(), String.join(" ", command) + " failed: " + Files.readString(err));
                return out;
            } finally {
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    static List<JsonNode> load(Path file) {
        try {
            List<JsonNode> docs = YAML.readerFor(JsonNode.class).<JsonNode>readValues(file.toFile()).readAll();
            return docs.stream().filter(d -> d != null && !d.isNull() && !d.isMissingNode()).toList();
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": " + e.getMessage(), e);
        }
    }

    /** KEY=value lines, as kustomize's env files and bash's source read them (no quotes, no spaces). */
    static Map<String, String> envFile(Path file) {
        Map<String, String> env = new LinkedHashMap<>();
        try {
            for (String line : Files.readAllLines(file)) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                assertTrue(line.matches("[A-Z_][A-Z0-9_]*=[^\\s'\"$`]*"), file + ": not KEY=value: " + line);
                env.put(line.substring(0, line.indexOf('=')), line.substring(line.indexOf('=') + 1));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return env;
    }

    /** The environment variables the launcher reads (or documents as read by the CLI), from its text. */
    static Set<String> launcherVariables() {
        try {
            Set<String> names = new TreeSet<>();
            Matcher m = Pattern.compile("\\b(FLOVER_[A-Z0-9_]+|JAVA_HOME)\\b").matcher(Files.readString(ROOT.resolve("flover")));
            while (m.find()) {
                names.add(m.group(1));
            }
            assertTrue(names.containsAll(Set.of("JAVA_HOME", "FLOVER_JAVA_OPTS", "FLOVER_HOME")), "launcher reads " + names);
            return names;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<Path> dockerfiles() throws IOException {
        try (Stream<Path> s = Files.list(ROOT.resolve("deploy"))) {
            List<Path> files = s.filter(f -> f.getFileName().toString().startsWith("Dockerfile")).sorted().toList();
            assertEquals(List.of(ROOT.resolve("deploy/Dockerfile")), files,
                    "one Dockerfile: the CPU and CUDA images differ in their BASE only");
            return files;
        }
    }

    private static Path repositoryRoot() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.isRegularFile(dir.resolve("k8s/base/kustomization.yaml"))) {
            dir = dir.getParent();
        }
        return Objects.requireNonNull(dir, "no k8s/base/kustomization.yaml above the working directory");
    }

    // ---------------------------------------------------------------------------------------------------------
    // Kubernetes semantics.

    static Map<String, String> strings(JsonNode map) {
        Map<String, String> out = new LinkedHashMap<>();
        map.properties().forEach(e -> out.put(e.getKey(), e.getValue().asText()));
        return out;
    }

    static String name(JsonNode doc) {
        return doc.path("metadata").path("name").asText();
    }

    /** A label selector's matchLabels; these manifests use no matchExpressions. */
    static Map<String, String> matchLabels(JsonNode selector, String owner) {
        assertFalse(selector.has("matchExpressions"), owner + ": matchExpressions are not checked here");
        return strings(selector.path("matchLabels"));
    }

    static boolean selects(Map<String, String> selector, Map<String, String> labels) {
        return labels.entrySet().containsAll(selector.entrySet());
    }

    static Map<String, String> commonLabels(List<Pod> pods) {
        Map<String, String> common = new LinkedHashMap<>(pods.getFirst().labels());
        pods.forEach(p -> common.entrySet().retainAll(p.labels().entrySet()));
        return common;
    }

    /** A port of a Service, a probe or a policy: a number, or the name of a container port. */
    static Integer targetPort(Pod p, JsonNode port) {
        return port.isInt() ? Integer.valueOf(port.asInt()) : p.ports().get(port.asText());
    }

    static int servicePort(JsonNode service, String portName) {
        for (JsonNode port : service.path("spec").path("ports")) {
            if (port.path("name").asText().equals(portName)) {
                return port.path("port").asInt();
            }
        }
        throw new AssertionError("Service " + name(service) + " has no port " + portName);
    }

    /** Whether a rule admits only pods with the Flover labels from this namespace. */
    static boolean internalOnly(JsonNode rule, Map<String, String> floverLabels) {
        JsonNode from = rule.path("from");
        if (from.size() == 0) {
            return false;
        }
        for (JsonNode peer : from) {
            if (peer.has("ipBlock") || peer.has("namespaceSelector") || !peer.has("podSelector")
                    || !selects(floverLabels, matchLabels(peer.path("podSelector"), "NetworkPolicy peer"))) {
                return false;
            }
        }
        return true;
    }

    static boolean covers(Pod p, JsonNode policyPort, int port) {
        if (!policyPort.has("port")) {
            return true; // every port of the protocol
        }
        Integer first = targetPort(p, policyPort.path("port"));
        if (first == null) {
            return false;
        }
        int last = policyPort.path("endPort").asInt(first);
        return first <= port && port <= last;
    }

    /** Whether some rule admits {@code from} (any pod elsewhere, if null) to {@code port} of {@code p}. */
    static boolean admits(List<JsonNode> policies, Pod p, int port, Pod from, Map<String, String> floverLabels) {
        for (JsonNode np : policies) {
            for (JsonNode rule : np.path("spec").path("ingress")) {
                boolean peer = rule.path("from").size() == 0;
                if (!peer && from != null) {
                    for (JsonNode f : rule.path("from")) {
                        peer |= f.has("podSelector") && !f.has("namespaceSelector")
                                && selects(matchLabels(f.path("podSelector"), name(np)), from.labels());
                    }
                }
                boolean portOk = rule.path("ports").size() == 0;
                for (JsonNode pp : rule.path("ports")) {
                    portOk |= covers(p, pp, port);
                }
                if (peer && portOk) {
                    return true;
                }
            }
        }
        return false;
    }

    static String gpuLimit(Pod p) {
        JsonNode limit = p.container().path("resources").path("limits").path("nvidia.com/gpu");
        return limit.isMissingNode() ? null : limit.asText();
    }
}
