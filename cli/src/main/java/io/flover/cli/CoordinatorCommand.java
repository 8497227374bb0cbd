package io.flover.cli;

import io.flover.cluster.Coordinator;
import io.flover.cluster.WorkerGroups;
import io.flover.coordinator.ServingMetrics;
import io.flover.model.ModelConfig;
import io.flover.worker.ShardLayout;
import io.flover.worker.server.Membership;
import io.flover.worker.server.Tls;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.ScheduledExecutorService;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "coordinator", mixinStandardHelpOptions = true,
        description = {"Serve a model over gRPC with tensor-parallel groups of worker processes (flover worker) "
                + "that join the same cluster.", "Groups of --tp workers form as workers join; each is a "
                + "data-parallel replica. Ready (gRPC health SERVING) once a group serves."})
final class CoordinatorCommand implements Callable<Integer> {
    @Option(names = "--model", required = true,
            description = "Hugging Face model directory, at the same path on the workers")
    Path model;

    @Option(names = "--tp", defaultValue = "1", description = "workers per tensor-parallel group (default: ${DEFAULT-VALUE})")
    int tensorParallel;

    @Option(names = "--host", defaultValue = "0.0.0.0", description = "address to listen on (default: ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--port", defaultValue = "50051", description = "client API port, 0 for any (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--advertise-host", description = "address the workers reach this process at (default: --host, "
            + "or this machine's address if that is a wildcard)")
    String advertiseHost;

    @Option(names = "--step-timeout", paramLabel = "MS", defaultValue = "30000",
            description = "a worker that takes longer to answer a step loses its group (default: ${DEFAULT-VALUE})")
    long stepTimeoutMs;

    @Option(names = "--load-timeout", paramLabel = "S", defaultValue = "600",
            description = "seconds a worker may take to load its shard (default: ${DEFAULT-VALUE})")
    long loadTimeoutSeconds;

    @Option(names = "--drain-timeout", paramLabel = "S", defaultValue = "30",
            description = "on SIGTERM, seconds the requests in flight get to finish while new ones are refused (default: ${DEFAULT-VALUE})")
    long drainTimeoutSeconds;

    @Mixin
    SchedulerFlags scheduler;

    @Mixin
    ClusterFlags cluster;

    @Mixin
    MetricsFlags metrics;

    @Mixin
    SecurityFlags security;

    @Mixin
    HttpFlags http;

    @Option(names = "--worker-tls-ca", paramLabel = "PEM", description = "reach workers over TLS, trusting this CA")
    Path workerCa;

    @Option(names = "--worker-tls-cert", paramLabel = "PEM",
            description = "with --worker-tls-ca: present this certificate to workers (mutual TLS)")
    Path workerCert;

    @Option(names = "--worker-tls-key", paramLabel = "PEM", description = "the PKCS#8 private key of --worker-tls-cert")
    Path workerKey;

    @Option(names = "--worker-tls-server-name", paramLabel = "NAME",
            description = "with --worker-tls-ca: check workers' certificates for this name instead of the address "
                    + "each is reached at (one certificate for every worker, e.g. a Kubernetes Secret)")
    String workerServerName;

    @Override
    public Integer call() throws Exception {
        Flags.requirePort("--port", port);
        http.check();
        Flags.require(tensorParallel >= 1, "--tp must be at least 1, got " + tensorParallel);
        Flags.require(stepTimeoutMs >= 1 && stepTimeoutMs <= Integer.MAX_VALUE, "--step-timeout must be in [1, 2^31) ms");
        Flags.require(loadTimeoutSeconds >= 1, "--load-timeout must be at least 1 second");
        Duration drainTimeout = Flags.drainTimeout(drainTimeoutSeconds);
        Flags.require(workerServerName == null || workerCa != null, "--worker-tls-server-name needs --worker-tls-ca");
        Tls workerTls = new Tls(workerCert, workerKey, workerCa);
        workerTls.client(); // reads the files now, not when the first worker joins
        // Fails now, naming the dimension, if the model does not split into --tp ranks.
        ShardLayout.of(ModelConfig.load(model), 0, tensorParallel);
        Membership.Options membership = cluster.options(Flags.advertised(advertiseHost, host));
        WorkerGroups.Options groups = new WorkerGroups.Options(model.toAbsolutePath(), tensorParallel,
                Duration.ofSeconds(loadTimeoutSeconds), Duration.ofMillis(stepTimeoutMs), scheduler.config(),
                workerTls, workerServerName);
        Flags.oneLineLogs();
        metrics.start(host);
        Coordinator.Options options = new Coordinator.Options(model.toAbsolutePath(), host, port, membership, groups,
                new ServingMetrics(metrics.registry()), security.security(), http.streams());
        Coordinator coordinator = Coordinator.start(options);
        metrics.readiness(coordinator::serving);
        try {
            http.start(coordinator.server(), model, host, security.tlsCert != null);
        } catch (IOException | RuntimeException e) {
            coordinator.close(); // e.g. the HTTP port is taken: nothing may keep serving
            throw e;
        }
        Flags.log("listening on " + host + ":" + coordinator.port() + " (policy " + scheduler.policy + "); waiting for "
                + tensorParallel + " worker" + (tensorParallel == 1 ? "" : "s") + " per group to join cluster '"
                + cluster.name + "'");
        ScheduledExecutorService ticker = BusyLine.start(coordinator.replicas());
        Flags.onShutdown(() -> {
            ticker.shutdownNow();
            coordinator.drainAndClose(drainTimeout);
            metrics.stop();
        });
        coordinator.awaitTermination();
        return 0;
    }
}
