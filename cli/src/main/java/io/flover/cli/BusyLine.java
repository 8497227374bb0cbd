package io.flover.cli;

import io.flover.coordinator.Replicas;
import io.flover.coordinator.Scheduler;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/** A log line per second while there is work: the load, KV usage and recent throughput; nothing when idle. */
final class BusyLine implements Runnable {
    private final Replicas replicas;
    private long lastTokens;
    private long lastNanos = System.nanoTime();

    private BusyLine(Replicas replicas) {
        this.replicas = replicas;
        this.lastTokens = replicas.stats().generatedTokens();
    }

    /** Logs every second until the returned executor is shut down. */
    static ScheduledExecutorService start(Replicas replicas) {
        ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().name("flover-stats").daemon().unstarted(r));
        ticker.scheduleAtFixedRate(new BusyLine(replicas), 1, 1, TimeUnit.SECONDS);
        return ticker;
    }

    @Override
    public void run() {
        Scheduler.Stats s = replicas.stats();
        long now = System.nanoTime();
        long tokens = Math.max(0, s.generatedTokens() - lastTokens); // a retired group takes its count with it
        double seconds = (now - lastNanos) / 1e9;
        lastTokens = s.generatedTokens();
        lastNanos = now;
        if (s.running() == 0 && s.waiting() == 0 && tokens == 0) {
            return;
        }
        double kvUsed = s.totalBlocks() == 0 ? 0 : 100.0 * (s.totalBlocks() - s.freeBlocks()) / s.totalBlocks();
        Flags.log(String.format("running %d, waiting %d, KV %.0f%% used, %.0f tokens/s", s.running(), s.waiting(),
                kvUsed, tokens / seconds));
    }
}
