package io.flover.cluster;

import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.hazelcast.cluster.Member;
import io.flover.coordinator.Replicas;
import io.flover.coordinator.Scheduler;
import io.flover.coordinator.SchedulerConfig;
import io.flover.model.ModelConfig;
import io.flover.proto.v1.LoadShardRequest;
import io.flover.proto.v1.LoadShardResponse;
import io.flover.proto.v1.WorkerGrpc;
import io.flover.worker.GroupLostException;
import io.flover.worker.server.Membership;
import io.grpc.Grpc;
import io.flover.worker.server.Tls;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Forms tensor-parallel groups from the workers in the cluster and keeps them in {@link Replicas}. Free workers are
 * taken {@code tp} at a time in the order they joined; a group serves once every rank has loaded its shard. A
 * worker that leaves (or whose stream breaks, or that stops answering) retires its group: the group's requests
 * resume on the others, and its surviving workers are free again, to form a group with workers that join later.
 * All of this runs on one thread, so the bookkeeping needs no locks.
 */
public final class WorkerGroups implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WorkerGroups.class.getName());
    private static final Duration RETRY = Duration.ofSeconds(2);
    private static final Duration QUARANTINE = Duration.ofSeconds(30);

    /**
     * How groups are formed and run.
     *
     * @param modelDir the model directory, as the workers see it
     * @param loadTimeout how long loading a shard may take
     * @param stepTimeout how long a rank may take to answer a step before its group is lost
     * @param tls how to reach workers: the CA to trust and, for mutual TLS, this coordinator's certificate
     * @param tlsServerName the name workers' certificates are checked for; null for the address each is reached
     *     at (its advertised host, in Kubernetes a pod IP that no certificate made beforehand can name)
     */
    public record Options(Path modelDir, int tensorParallel, Duration loadTimeout, Duration stepTimeout,
                          SchedulerConfig scheduler, Tls tls, String tlsServerName) {
    }

    private record Worker(UUID id, String address, String collectiveAddress, ManagedChannel channel) {
    }

    private record Group(String id, List<Worker> ranks, Scheduler scheduler) {
    }

    private final ModelConfig model;
    private final Options options;
    private final Replicas replicas;
    private final IntConsumer groupsChanged;
    private final ScheduledExecutorService thread = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().name("flover-groups").daemon().unstarted(r));

    // Owned by the thread above.
    /** Workers in the cluster now, wherever they are in their life here. */
    private final Set<UUID> members = new HashSet<>();
    private final Map<UUID, Worker> free = new LinkedHashMap<>();
    private final Map<UUID, Group> groupOf = new HashMap<>();
    /** Workers loading a shard for a group that does not serve yet. */
    private final Map<UUID, Worker> loading = new HashMap<>();
    /** Workers that could not load the model (until they rejoin) or that failed their group (for a while). */
    private final Set<UUID> unusable = new HashSet<>();
    private boolean retryScheduled;
    private int groupsFormed;
    /** Tells this coordinator's groups from those of an earlier one in the workers' collectives handshakes. */
    private final String epoch = Long.toHexString(System.currentTimeMillis());

    /** {@code groupsChanged} hears the number of serving groups whenever it changes, e.g. for readiness. */
    public WorkerGroups(ModelConfig model, Options options, Replicas replicas, IntConsumer groupsChanged) {
        this.model = model;
        this.options = options;
        this.replicas = replicas;
        this.groupsChanged = groupsChanged;
    }

    /** Follows the workers of {@code membership}: those there now and those that come and go. */
    public void watch(Membership membership) {
        membership.watch(m -> onThread(() -> joined(m)), m -> onThread(() -> left(m)));
        for (Member m : membership.members()) {
            onThread(() -> joined(m));
        }
    }

    private void joined(Member m) {
        String address = m.getAttribute(Membership.WORKER_ADDRESS);
        if (!"worker".equals(m.getAttribute(Membership.ROLE)) || address == null || !members.add(m.getUuid())) {
            return;
        }
        ManagedChannel channel;
        try {
            channel = channel(address, options.tls(), options.tlsServerName());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the TLS files to reach workers", e);
        }
        free.put(m.getUuid(), new Worker(m.getUuid(), address, m.getAttribute(Membership.COLLECTIVE_ADDRESS),
                channel));
        unusable.remove(m.getUuid());
        LOG.info(() -> "worker " + address + " joined; " + free.size() + " free");
        form();
    }

    /** A channel to the worker at {@code address}; over TLS, its certificate must name {@code serverName} if given. */
    public static ManagedChannel channel(String address, Tls tls, String serverName) throws IOException {
        var builder = Grpc.newChannelBuilder(address, tls.client()).maxInboundMessageSize(16 << 20);
        if (serverName != null) {
            builder.overrideAuthority(serverName);
        }
        return builder.build();
    }

    private void left(Member m) {
        UUID id = m.getUuid();
        if (!members.remove(id)) {
            return;
        }
        LOG.info(() -> "worker " + m.getAttribute(Membership.WORKER_ADDRESS) + " left");
        unusable.remove(id);
        Group g = groupOf.get(id);
        if (g != null) {
            retire(g, "worker " + m.getAttribute(Membership.WORKER_ADDRESS) + " left the cluster");
        }
        Worker w = free.remove(id);
        if (w == null) {
            w = loading.get(id); // its load fails at once, and loaded() releases the group's others
        }
        if (w != null) {
            w.channel().shutdownNow();
        }
    }

    /** Starts forming as many groups as the free workers allow. */
    private void form() {
        List<Worker> candidates = free.values().stream().filter(w -> !unusable.contains(w.id())).toList();
        int tp = options.tensorParallel();
        for (int at = 0; at + tp <= candidates.size(); at += tp) {
            load(List.copyOf(candidates.subList(at, at + tp)));
        }
    }

    /**
     * Loads a shard on every rank at once (they connect to each other while loading); the group serves once all
     * have, from {@link #loaded}. Loading happens off this thread, so a slow or stuck worker delays nothing else.
     */
    private void load(List<Worker> ranks) {
        String id = "g" + (++groupsFormed);
        int tp = ranks.size();
        List<String> peers = ranks.stream().map(Worker::collectiveAddress).toList();
        List<ListenableFuture<LoadShardResponse>> loads = new ArrayList<>();
        for (int r = 0; r < tp; r++) {
            LoadShardRequest request = LoadShardRequest.newBuilder()
                    .setModelDir(options.modelDir().toString()).setGroupId(id + "@" + epoch).setRank(r).setWorldSize(tp)
                    .addAllPeerAddresses(peers).setBlockSize(options.scheduler().blockSize())
                    .setMaxSlots(options.scheduler().maxBatch())
                    .setCollectiveTimeoutMs(Math.toIntExact(options.stepTimeout().toMillis()))
                    .build();
            loads.add(WorkerGrpc.newFutureStub(ranks.get(r).channel())
                    .withDeadlineAfter(options.loadTimeout().toMillis(), TimeUnit.MILLISECONDS).loadShard(request));
        }
        ranks.forEach(w -> {
            free.remove(w.id());
            loading.put(w.id(), w);
        });
        Futures.whenAllComplete(loads).run(() -> onThread(() -> loaded(id, ranks, loads)),
                MoreExecutors.directExecutor());
        LOG.info(() -> "group " + id + ": loading " + tp + " shards on " + names(ranks));
    }

    private void loaded(String id, List<Worker> ranks, List<ListenableFuture<LoadShardResponse>> loads) {
        ranks.forEach(w -> loading.remove(w.id()));
        boolean ok = true;
        int fewestBlocks = Integer.MAX_VALUE;
        for (int r = 0; r < ranks.size(); r++) {
            try {
                fewestBlocks = Math.min(fewestBlocks, Futures.getDone(loads.get(r)).getNumKvBlocks());
            } catch (ExecutionException | CancellationException e) {
                ok = false;
                Status status = Status.fromThrowable(e.getCause() == null ? e : e.getCause());
                LOG.warning("group " + id + ": worker " + ranks.get(r).address() + " could not load rank " + r + ": "
                        + status.getCode() + " " + status.getDescription());
                if (status.getCode() == Status.Code.FAILED_PRECONDITION || status.getCode() == Status.Code.INVALID_ARGUMENT) {
                    unusable.add(ranks.get(r).id());
                }
            }
        }
        boolean allHere = ranks.stream().allMatch(w -> members.contains(w.id()));
        if (!ok || !allHere) {
            release(ranks);
            retryLater();
            return;
        }
        RemoteGroup runner = RemoteGroup.open(id, ranks.stream().map(Worker::address).toList(),
                ranks.stream().map(Worker::channel).toList(), options.stepTimeout(),
                loss -> onThread(() -> lost(id, loss)), replicas.metrics());
        // Every rank holds at least this many blocks: the group uses those.
        int blocks = fewestBlocks;
        Group g = new Group(id, ranks, replicas.add(runner, blocks, options.scheduler()));
        ranks.forEach(w -> groupOf.put(w.id(), g));
        LOG.info(() -> "group " + id + " serves on " + names(ranks) + " with " + blocks + " KV blocks");
        groupsChanged.accept(replicas.size());
    }

    private static String names(List<Worker> ranks) {
        return ranks.stream().map(Worker::address).toList().toString();
    }

    private void lost(String id, RemoteGroup.Loss loss) {
        groupOf.values().stream().filter(g -> g.id().equals(id)).findFirst().ifPresent(g -> {
            if (loss.rank() >= 0) {
                quarantine(g.ranks().get(loss.rank()));
            }
            retire(g, loss.why());
        });
    }

    /**
     * Keeps a worker that failed its group out of new groups for a while: one that hangs (a stopped process) would
     * otherwise stall the next group it joins until the cluster drops it.
     */
    private void quarantine(Worker w) {
        unusable.add(w.id());
        thread.schedule(() -> onThread(() -> {
            if (unusable.remove(w.id()) && free.containsKey(w.id())) {
                form();
            }
        }), QUARANTINE.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Stops a group: its requests resume elsewhere and its workers that are still here are free again. */
    private void retire(Group g, String why) {
        LOG.warning("retiring group " + g.id() + ": " + why);
        g.ranks().forEach(w -> groupOf.remove(w.id()));
        replicas.retire(g.scheduler(), new GroupLostException(why, null));
        release(g.ranks());
        groupsChanged.accept(replicas.size());
        retryLater();
    }

    /**
     * Workers back from a group or a failed load: free again if still here, else closed. Gently: a worker that left
     * on SIGTERM still finishes the step in flight, and the group's runner ends its stream after that step.
     */
    private void release(List<Worker> workers) {
        for (Worker w : workers) {
            if (members.contains(w.id())) {
                free.put(w.id(), w);
            } else {
                w.channel().shutdown();
            }
        }
    }

    /** Runs {@code action} on the groups thread; a failure is logged, not lost in an executor's future. */
    private void onThread(Runnable action) {
        thread.execute(() -> {
            try {
                action.run();
            } catch (RuntimeException e) {
                LOG.log(Level.SEVERE, "forming groups failed", e);
            }
        });
    }

    private void retryLater() {
        if (!retryScheduled) {
            retryScheduled = true;
            thread.schedule(() -> onThread(() -> {
                retryScheduled = false;
                form();
            }), RETRY.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    @Override
    public void close() {
        thread.shutdownNow();
        try {
            thread.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Group g : groupOf.values()) {
            g.ranks().forEach(w -> w.channel().shutdownNow());
        }
        free.values().forEach(w -> w.channel().shutdownNow());
        LOG.log(Level.FINE, "stopped forming groups");
    }
}
