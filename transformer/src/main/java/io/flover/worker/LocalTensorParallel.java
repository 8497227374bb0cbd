package io.flover.worker;

import io.flover.collectives.Communicator;
import io.flover.collectives.LocalGroup;
import io.flover.kernels.cpu.CpuBackend;
import io.flover.kernels.cpu.CpuKernels;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * A tensor-parallel group inside one process: one shard per rank, each with its own kernel threads, its own KV
 * cache and a thread that runs its side of every step, the ranks exchanging partial sums through shared memory.
 * What {@code flover serve --tp N} runs, and how tests cover tensor parallelism without processes.
 */
public final class LocalTensorParallel implements StepRunner {
    private final List<LoadedModel> models;
    private final List<CpuKernels> kernels;
    private final List<Communicator> comms;
    private final List<ShardExecutor> shards;
    private final ExecutorService rankThreads;

    private LocalTensorParallel(List<LoadedModel> models, List<CpuKernels> kernels, List<Communicator> comms,
                                List<ShardExecutor> shards) {
        this.models = models;
        this.kernels = kernels;
        this.comms = comms;
        this.shards = shards;
        this.rankThreads = Executors.newFixedThreadPool(shards.size() - 1,
                Thread.ofPlatform().name("flover-rank-", 1).daemon().factory());
    }

    /**
     * Opens {@code size} shards of the model in {@code dir}, giving each rank {@code threadsPerRank} kernel threads
     * and a KV cache of {@code numBlocks} blocks for its heads.
     */
    public static LocalTensorParallel open(Path dir, int size, int threadsPerRank, int numBlocks, int blockSize,
                                           int maxSlots, Duration collectiveTimeout) throws IOException {
        if (size < 2) {
            throw new IllegalArgumentException("a tensor-parallel group needs at least 2 ranks, not " + size);
        }
        List<Communicator> comms = LocalGroup.create(size, collectiveTimeout);
        List<CpuKernels> kernels = new ArrayList<>();
        List<LoadedModel> models = new ArrayList<>();
        List<ShardExecutor> shards = new ArrayList<>();
        try {
            for (Communicator comm : comms) {
                CpuKernels k = new CpuKernels(threadsPerRank);
                kernels.add(k);
                if (kernels.size() == 1) {
                    k.warmUp(); // as a single-rank server is: no request should meet a kernel path cold
                }
                LoadedModel m = LoadedModel.open(dir, new CpuBackend(k), comm);
                models.add(m);
                shards.add(new ShardExecutor(m.lm(), numBlocks, blockSize, maxSlots));
            }
        } catch (IOException | RuntimeException e) {
            models.forEach(LoadedModel::close);
            kernels.forEach(CpuKernels::close);
            comms.forEach(Communicator::close);
            throw e;
        }
        return new LocalTensorParallel(models, kernels, comms, shards);
    }

    /** Rank 0's shard: its layout and config stand for the group's. */
    public CausalLm lm() {
        return shards.getFirst().lm();
    }

    /**
     * Runs the step on every rank at once (rank 0 on the calling thread) and checks that they sampled alike. Any
     * failure loses the group: the other ranks' collectives fail with it.
     */
    @Override
    public StepResult run(Step step) {
        List<Future<StepResult>> others = new ArrayList<>();
        for (ShardExecutor shard : shards.subList(1, shards.size())) {
            others.add(rankThreads.submit(() -> shard.run(step)));
        }
        int rank = 0;
        try {
            StepResult result = shards.getFirst().run(step);
            for (rank = 1; rank < shards.size(); rank++) {
                int[] theirs = others.get(rank - 1).get().sampled();
                if (!Arrays.equals(result.sampled(), theirs)) {
                    throw new IllegalStateException("rank " + rank + " sampled " + Arrays.toString(theirs)
                            + " where rank 0 sampled " + Arrays.toString(result.sampled()));
                }
            }
            return result;
        } catch (ExecutionException e) {
            throw lost(step, rank, e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw lost(step, rank, e);
        } catch (RuntimeException e) {
            throw lost(step, rank, e);
        }
    }

    private GroupLostException lost(Step step, int rank, Throwable cause) {
        comms.forEach(Communicator::close); // ranks still in a collective must not wait out the timeout
        return new GroupLostException("rank " + rank + " failed step " + step.id() + ": " + cause.getMessage(), cause);
    }

    @Override
    public void reset() {
        shards.forEach(ShardExecutor::reset);
    }

    @Override
    public void close() {
        comms.forEach(Communicator::close);
        rankThreads.shutdownNow();
        models.forEach(LoadedModel::close);
        kernels.forEach(CpuKernels::close);
    }
}
