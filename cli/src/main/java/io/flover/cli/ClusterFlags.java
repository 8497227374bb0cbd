package io.flover.cli;

import io.flover.worker.server.Membership;
import java.util.Arrays;
import java.util.List;
import picocli.CommandLine.Option;

/** How a coordinator or worker joins the cluster, shared by both. */
final class ClusterFlags {
    @Option(names = "--cluster", paramLabel = "HOST:PORT,...", defaultValue = "127.0.0.1:5701",
            description = "cluster members to contact when joining (default: ${DEFAULT-VALUE})")
    String seeds;

    @Option(names = "--cluster-name", defaultValue = "flover",
            description = "only members with the same name form a cluster (default: ${DEFAULT-VALUE})")
    String name;

    @Option(names = "--cluster-port", defaultValue = "5701",
            description = "cluster membership port; the next free one above it is taken if busy (default: ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--cluster-service", paramLabel = "DNS-NAME",
            description = "find the members through this Kubernetes headless Service instead of --cluster")
    String kubernetesService;

    /** The address of this process as others reach it, from {@code --advertise-host} or the bind host. */
    Membership.Options options(String advertiseHost) {
        Flags.require(port >= 0 && port < 65536, "--cluster-port must be in [0, 65535], got " + port);
        List<String> members = Arrays.stream(seeds.split(",")).map(String::strip).filter(s -> !s.isEmpty()).toList();
        Flags.require(!members.isEmpty(), "--cluster names no member");
        return new Membership.Options(name, advertiseHost, port, members, kubernetesService);
    }
}
