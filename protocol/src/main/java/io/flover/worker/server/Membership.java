package io.flover.worker.server;

import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * This process's membership in the Flover cluster (Hazelcast). A worker joins with its addresses as member
 * attributes; the coordinator watches members come and go and forms groups from them. Hazelcast removes a member
 * that leaves or stops answering its heartbeats, which is how a dead worker's group is found out when no step
 * was running.
 */
public final class Membership implements AutoCloseable {
    /** Member attributes a worker announces. */
    public static final String ROLE = "flover.role";
    public static final String WORKER_ADDRESS = "flover.worker";
    public static final String COLLECTIVE_ADDRESS = "flover.collectives";
    public static final String DEVICE = "flover.device";

    /**
     * Where to join: the cluster's name, the address this member binds and announces, and how to find the others:
     * the members to contact first ({@code host:port}, the TCP-IP join), or, when {@code kubernetesService} is set,
     * the pods behind that headless Service's DNS name (Hazelcast's Kubernetes discovery in DNS mode, which needs
     * no API access).
     */
    public record Options(String clusterName, String host, int port, List<String> seeds, String kubernetesService) {
    }

    /** Hazelcast narrates every connection at INFO; its warnings are what an operator needs. Held: levels are weak. */
    private static final Logger HAZELCAST_LOG = Logger.getLogger("com.hazelcast");

    private final HazelcastInstance hazelcast;

    private Membership(HazelcastInstance hazelcast) {
        this.hazelcast = hazelcast;
    }

    public static Membership join(Options o, Map<String, String> attributes) {
        if (HAZELCAST_LOG.getLevel() == null) {
            HAZELCAST_LOG.setLevel(Level.WARNING);
        }
        Config config = new Config();
        config.setClusterName(o.clusterName());
        config.setProperty("hazelcast.logging.type", "jdk");
        config.setProperty("hazelcast.phone.home.enabled", "false");
        config.setProperty("hazelcast.shutdownhook.enabled", "false");
        // A worker that stops answering must leave the cluster within seconds, not the default minute.
        config.setProperty("hazelcast.heartbeat.interval.seconds", "1");
        config.setProperty("hazelcast.max.no.heartbeat.seconds", "6");
        config.setProperty("hazelcast.merge.first.run.delay.seconds", "5");
        config.setProperty("hazelcast.merge.next.run.delay.seconds", "5");
        config.getJetConfig().setEnabled(false);
        NetworkConfig network = config.getNetworkConfig();
        network.setPort(o.port()).setPortAutoIncrement(o.port() != 0);
        network.getInterfaces().setEnabled(true).addInterface(o.host());
        config.setProperty("hazelcast.local.localAddress", o.host());
        JoinConfig join = network.getJoin();
        join.getMulticastConfig().setEnabled(false);
        join.getAutoDetectionConfig().setEnabled(false);
        if (o.kubernetesService() != null) {
            join.getKubernetesConfig().setEnabled(true).setProperty("service-dns", o.kubernetesService())
                    .setProperty("service-port", Integer.toString(o.port()));
        } else {
            join.getTcpIpConfig().setEnabled(true).setMembers(o.seeds().isEmpty() ? List.of(o.host()) : o.seeds());
        }
        config.getMemberAttributeConfig().setAttributes(attributes);
        return new Membership(Hazelcast.newHazelcastInstance(config));
    }

    /** The members now in the cluster, this one included. */
    public List<Member> members() {
        return List.copyOf(hazelcast.getCluster().getMembers());
    }

    public Member self() {
        return hazelcast.getCluster().getLocalMember();
    }

    /** Calls {@code joined} and {@code left} as members come and go, from a Hazelcast event thread. */
    public void watch(Consumer<Member> joined, Consumer<Member> left) {
        hazelcast.getCluster().addMembershipListener(new MembershipListener() {
            @Override
            public void memberAdded(MembershipEvent e) {
                joined.accept(e.getMember());
            }

            @Override
            public void memberRemoved(MembershipEvent e) {
                left.accept(e.getMember());
            }
        });
    }

    @Override
    public void close() {
        hazelcast.shutdown();
    }
}
