package io.flover.coordinator;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.composite.CompositeMeterRegistry;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.ToDoubleFunction;

/**
 * The serving meters, named as the well-known LLM servers name theirs (Prometheus: {@code
 * flover_time_to_first_token_seconds}, {@code flover_num_requests_running}, ...), so their dashboards and
 * autoscalers work on Flover. Request latencies are measured as the client's stream sees them.
 */
public final class ServingMetrics {
    private final MeterRegistry registry;
    private final Timer timeToFirstToken;
    private final Timer interTokenLatency;
    private final Timer e2eLatency;
    private final Timer queueTime;
    private final Timer stepDuration;
    private final DistributionSummary stepTokens;
    private final Counter promptTokens;
    private final Counter generationTokens;
    private final Counter preemptions;
    private final AtomicLong stragglerLagNanos = new AtomicLong();

    public ServingMetrics(MeterRegistry registry) {
        this.registry = registry;
        this.timeToFirstToken = latency("flover.time.to.first.token", "Time from arrival to the first token");
        this.interTokenLatency = latency("flover.inter.token.latency", "Time between a request's successive tokens");
        this.e2eLatency = latency("flover.e2e.request.latency", "Time from arrival to the end of a request");
        this.queueTime = latency("flover.request.queue.time", "Time from arrival to the first step of a request");
        this.stepDuration = latency("flover.step.duration", "Time a fused step takes");
        this.stepTokens = DistributionSummary.builder("flover.step.tokens").description("Tokens in a fused step")
                .publishPercentileHistogram().maximumExpectedValue(4096.0).register(registry);
        this.promptTokens = Counter.builder("flover.prompt.tokens").description("Prompt tokens of finished requests")
                .register(registry);
        this.generationTokens = Counter.builder("flover.generation.tokens").description("Tokens generated")
                .register(registry);
        this.preemptions = Counter.builder("flover.num.preemptions")
                .description("Sequences preempted for lack of KV blocks (to be recomputed)").register(registry);
        Gauge.builder("flover.rank.straggler.lag", stragglerLagNanos, lag -> lag.get() / 1e9).baseUnit("seconds")
                .description("How long the slowest rank of the last remote step computed beyond the fastest")
                .register(registry);
    }

    /** The meters in Prometheus' text format, or null where the process keeps no Prometheus registry. */
    public java.util.function.Supplier<String> prometheus() {
        return registry instanceof io.micrometer.prometheusmetrics.PrometheusMeterRegistry p ? p::scrape : null;
    }

    /** Meters that go nowhere. */
    public static ServingMetrics none() {
        return new ServingMetrics(new CompositeMeterRegistry());
    }

    /** Gauges of the live state of {@code replicas}. */
    void watch(Replicas replicas) {
        gauge("flover.num.requests.running", "Requests in the live batches", replicas, r -> r.stats().running());
        gauge("flover.num.requests.waiting", "Requests waiting for admission", replicas, r -> r.stats().waiting());
        gauge("flover.kv.cache.usage.ratio", "Fraction of KV blocks in use", replicas, r -> {
            Scheduler.Stats s = r.stats();
            return s.totalBlocks() == 0 ? 0 : (s.totalBlocks() - s.freeBlocks()) / (double) s.totalBlocks();
        });
        Gauge.builder("flover.kv.cache.blocks", replicas, r -> r.stats().totalBlocks() - r.stats().freeBlocks())
                .tag("state", "used").description("KV blocks").register(registry);
        Gauge.builder("flover.kv.cache.blocks", replicas, r -> r.stats().freeBlocks())
                .tag("state", "free").description("KV blocks").register(registry);
        gauge("flover.num.groups", "Tensor-parallel groups serving", replicas, Replicas::size);
    }

    /** {@code listener}, with the request's latencies and tokens recorded on the way. */
    GenerationListener metered(GenerationListener listener) {
        long arrival = System.nanoTime();
        return new GenerationListener() {
            private long lastToken = -1;

            @Override
            public void onTokens(int[] ids, String text, io.flover.worker.TokenLogprobs[] logprobs) {
                if (ids.length > 0) {
                    long now = System.nanoTime();
                    if (lastToken < 0) {
                        timeToFirstToken.record(now - arrival, TimeUnit.NANOSECONDS);
                    } else {
                        interTokenLatency.record(now - lastToken, TimeUnit.NANOSECONDS);
                    }
                    lastToken = now;
                    generationTokens.increment(ids.length);
                }
                listener.onTokens(ids, text, logprobs);
            }

            @Override
            public void onPromptLogprobs(io.flover.worker.TokenLogprobs[] logprobs) {
                listener.onPromptLogprobs(logprobs);
            }

            @Override
            public void onFinished(Outcome outcome) {
                e2eLatency.record(Duration.ofNanos((long) (outcome.totalSeconds() * 1e9)));
                queueTime.record(Duration.ofNanos((long) (outcome.queueSeconds() * 1e9)));
                promptTokens.increment(outcome.promptTokens());
                registry.counter("flover.requests.finished", "reason", outcome.reason().apiName()).increment();
                listener.onFinished(outcome);
            }
        };
    }

    /** A request refused before it was queued, by the gRPC status it got. */
    public void rejected(String status) {
        registry.counter("flover.requests.rejected", "status", status.toUpperCase(Locale.ROOT)).increment();
    }

    void stepped(long nanos, int tokens) {
        stepDuration.record(nanos, TimeUnit.NANOSECONDS);
        stepTokens.record(tokens);
    }

    void preempted() {
        preemptions.increment();
    }

    /**
     * Time the coordinator spent in one phase of a step: {@code plan} (deciding and applying the plan), {@code
     * apply} (handing the sampled tokens on) and, for a group of remote workers, {@code send} (encoding the step
     * and writing it to every rank) and {@code wait} (until the last rank answered).
     */
    public void phase(String phase, long nanos) {
        stepTimer("flover.step.phase", "Time the coordinator spends in a phase of a step", "phase", phase)
                .record(nanos, TimeUnit.NANOSECONDS);
    }

    /** What each rank of a remote group spent on one step: in all, and of that in collectives. */
    public void ranks(long[] computeNanos, long[] collectiveNanos) {
        long fastest = Long.MAX_VALUE;
        long slowest = 0;
        for (int rank = 0; rank < computeNanos.length; rank++) {
            String r = Integer.toString(rank);
            stepTimer("flover.rank.compute", "Time a rank spends on a step", "rank", r)
                    .record(computeNanos[rank], TimeUnit.NANOSECONDS);
            stepTimer("flover.rank.collective", "Time a rank spends in collectives during a step", "rank", r)
                    .record(collectiveNanos[rank], TimeUnit.NANOSECONDS);
            fastest = Math.min(fastest, computeNanos[rank]);
            slowest = Math.max(slowest, computeNanos[rank]);
        }
        stragglerLagNanos.set(computeNanos.length == 0 ? 0 : slowest - fastest);
    }

    private Timer stepTimer(String name, String description, String tag, String value) {
        return Timer.builder(name).description(description).tag(tag, value).publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofNanos(10_000)).maximumExpectedValue(Duration.ofMinutes(1))
                .register(registry);
    }

    private Timer latency(String name, String description) {
        return Timer.builder(name).description(description).publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofMinutes(10))
                .register(registry);
    }

    private <T> void gauge(String name, String description, T on, ToDoubleFunction<T> value) {
        Gauge.builder(name, on, value).description(description).register(registry);
    }
}
