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
import io.flover.proto.v1.GenerationGrpc;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Named;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

/**
 * The Kubernetes manifests ({@code k8s/}) against the CLI they start and the launcher that runs it: every flag the
 * pods pass is an option of its command and parses, with the values of the ConfigMap; ports, probes, Services and
 * the NetworkPolicy agree with the ports the processes bind; the pods set only environment variables the launcher
 * reads or their args use. The base is checked as written; the overlays as {@code kubectl kustomize} renders them,
 * when kubectl is on the PATH ({@code .ci/run} installs it).
 */
class DeploymentManifestsTest {
    private static final Path ROOT = repositoryRoot();
    private static final Path K8S = ROOT.resolve("k8s");
    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** Values the downward API gives the pods, for resolving {@code $(NAME)} in their args. */
    private static final String POD_IP = "10.1.2.3";
    private static final String NAMESPACE = "flover-test";
    private static final Map<String, String> FIELD_REFS = Map.of(
            "status.podIP", POD_IP, "metadata.namespace", NAMESPACE, "metadata.name", "flover-pod-0");
    /** What {@code flover worker --device} accepts in this build (WorkerCommand). */
    private static final Set<String> DEVICES = Set.of("cpu");
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

    /** A container's args with {@code $(NAME)} resolved, parsed by the CLI into its command object. */
    record Launch(String command, List<String> args, Object options, Set<String> referencedEnv) {
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
            return new Launch(args.getFirst(), args, parsed.subcommand().commandSpec().userObject(), referenced);
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
                ports.add(c.port);
            }
            return ports;
        }
    }

    static Stream<Named<Manifests>> deployments() {
        List<Named<Manifests>> all = new ArrayList<>(List.of(Named.of("base", base())));
        if (kubectl().isPresent()) {
            all.add(Named.of("overlay cpu", rendered("cpu")));
            all.add(Named.of("overlay gpu", rendered("gpu")));
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
        ByteSize.parse("--kv-memory", w.kvMemory);
        assertTrue(DEVICES.contains(w.device), "worker --device " + w.device + ": the CLI accepts " + DEVICES);
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
        assertEquals(Map.of("grpc", c.port, "metrics", c.metrics.port, "hazelcast", c.cluster.port),
                m.pod("coordinator").ports(), "coordinator container ports");
        WorkerCommand w = (WorkerCommand) m.pod("worker").launch().options();
        assertTrue(w.port != 0 && w.collectivePort != 0, "worker --port and --collective-port must be fixed");
        assertNotNull(w.metrics.port, "worker --metrics-port");
        assertEquals(Map.of("worker", w.port, "collectives", w.collectivePort, "metrics", w.metrics.port,
                "hazelcast", w.cluster.port), m.pod("worker").ports(), "worker container ports");
        JsonNode clientService = m.get("Service", "flover");
        assertEquals(c.port, servicePort(clientService, "grpc"), "Service flover's grpc port is the coordinator's --port");
        assertEquals(c.metrics.port, servicePort(clientService, "metrics"), "Service flover's metrics port");
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

    @ParameterizedTest(name = "{0}")
    @MethodSource("deployments")
    void probesAskTheHealthServicesTheServersRegister(Manifests m) {
        for (Pod p : m.pods()) {
            Launch l = p.launch();
            JsonNode container = p.container();
            List<String> kinds = new ArrayList<>(List.of("livenessProbe", "readinessProbe"));
            if (l.options() instanceof WorkerCommand) {
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
                assertTrue(probe.has("grpc"), p.name() + " " + kind + ": a gRPC health probe");
                int port = probe.path("grpc").path("port").asInt();
                assertTrue(p.ports().containsValue(port), p.name() + " " + kind + ": port " + port + " is no container port");
                assertEquals(l.grpcPort(), port, p.name() + " " + kind + ": the gRPC server's port");
                String service = probe.path("grpc").path("service").asText("");
                assertTrue(HEALTH_SERVICES.get(l.options().getClass()).contains(service),
                        p.name() + " " + kind + ": the server registers no health service '" + service + "'");
                // Liveness: the process, alive from its bind; readiness of the coordinator: a group serves.
                String expected = kind.equals("readinessProbe") && l.options() instanceof CoordinatorCommand
                        ? GenerationGrpc.SERVICE_NAME : "";
                assertEquals(expected, service, p.name() + " " + kind + " service");
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
        for (Path f : files) {
            for (JsonNode doc : load(f)) {
                assertTrue(doc.hasNonNull("apiVersion") && doc.hasNonNull("kind"), f + ": a document without kind");
                if (doc.path("kind").asText().equals("Kustomization")) {
                    Path dir = f.getParent();
                    for (JsonNode r : doc.path("resources")) {
                        Path target = dir.resolve(r.asText()).normalize();
                        assertTrue(Files.isRegularFile(target) || Files.isRegularFile(target.resolve("kustomization.yaml")),
                                f + ": resource " + r.asText() + " does not exist");
                        referenced.add(target);
                    }
                    for (JsonNode p : doc.path("patches")) {
                        Path target = dir.resolve(p.path("path").asText()).normalize();
                        assertTrue(Files.isRegularFile(target), f + ": patch " + target + " does not exist");
                        referenced.add(target);
                    }
                    for (JsonNode g : doc.path("configMapGenerator")) {
                        for (JsonNode e : g.path("envs")) {
                            assertTrue(Files.isRegularFile(dir.resolve(e.asText())), f + ": env file " + e.asText());
                        }
                    }
                }
            }
        }
        for (Path f : files) {
            assertTrue(f.getFileName().toString().equals("kustomization.yaml") || referenced.contains(f.normalize()),
                    f + " is in no kustomization");
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
        return RENDERED.computeIfAbsent(overlay, o -> {
            String yaml = run(kubectl().orElseThrow(), "kustomize", K8S.resolve("overlays").resolve(o).toString());
            try {
                return new Manifests(o, YAML.readerFor(JsonNode.class).<JsonNode>readValues(yaml).readAll());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
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
            assertEquals(2, files.size(), "deploy/Dockerfile.cpu and deploy/Dockerfile.cuda");
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
