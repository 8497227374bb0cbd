package io.flover.cli;

import io.flover.kernels.Device;
import io.flover.worker.KvMemory;
import io.flover.worker.server.Membership;
import io.flover.worker.server.Tls;
import java.nio.file.Path;
import java.time.Duration;
import io.flover.worker.server.WorkerNode;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "worker", mixinStandardHelpOptions = true,
        description = {"Run a worker: join the cluster and hold a tensor-parallel shard of the coordinator's model "
                + "when it puts this worker in a group."})
final class WorkerCommand implements Callable<Integer> {
    /** How long a stopping worker waits for the coordinator to take its group's requests elsewhere. */
    private static final Duration DRAIN_TIMEOUT = Duration.ofSeconds(20);

    @Option(names = "--host", defaultValue = "0.0.0.0", description = "address to listen on (default: ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--advertise-host", description = "address the coordinator and peers reach this worker at "
            + "(default: --host, or this machine's address if that is a wildcard)")
    String advertiseHost;

    @Option(names = "--port", defaultValue = "0", description = "worker service port, 0 for any (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--collective-port", defaultValue = "0",
            description = "port of the all-reduce connections between ranks, 0 for any (default: ${DEFAULT-VALUE})")
    int collectivePort;

    @Mixin
    DeviceFlags device;

    @Mixin
    KvMemoryFlags kv;

    @Option(names = "--threads", description = "compute threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Mixin
    ClusterFlags cluster;

    @Mixin
    MetricsFlags metrics;

    @Option(names = "--tls-cert", paramLabel = "PEM", description = "serve the worker service over TLS with this certificate")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "PEM", description = "the PKCS#8 private key of --tls-cert")
    Path tlsKey;

    @Option(names = "--tls-client-ca", paramLabel = "PEM",
            description = "accept only coordinators with a certificate signed by this CA (mutual TLS)")
    Path clientCa;

    @Override
    public Integer call() throws Exception {
        Device on = device.device();
        Flags.requirePort("--port", port);
        Flags.requirePort("--collective-port", collectivePort);
        Flags.require(threads >= 1, "--threads must be at least 1, got " + threads);
        KvMemory kvMemory = kv.kvMemory(on);
        String advertise = Flags.advertised(advertiseHost, host);
        Membership.Options membership = cluster.options(advertise);
        Flags.oneLineLogs();
        metrics.start(host);
        WorkerNode node = WorkerNode.start(new WorkerNode.Options(host, advertise, port, collectivePort, on, threads, kvMemory,
                membership, metrics.registry(), new Tls(tlsCert, tlsKey, clientCa)));
        Flags.log("worker at " + advertise + ":" + node.port() + " (collectives on port " + node.collectivePort()
                + ") joined cluster '" + cluster.name + "'");
        Flags.onShutdown(() -> {
            node.drainAndClose(DRAIN_TIMEOUT);
            metrics.stop();
        });
        node.awaitTermination();
        return 0;
    }
}
