package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ServingMetricsTest {
    @Test
    void eachRanksTimesGoToItsOwnHistogramAndTheSlowestRanksLagToTheGauge() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        ServingMetrics metrics = new ServingMetrics(registry);
        metrics.ranks(new long[] {5_000_000, 9_000_000, 6_000_000}, new long[] {1_000_000, 2_000_000, 3_000_000});
        metrics.ranks(new long[] {4_000_000, 4_500_000, 4_000_000}, new long[] {1_000_000, 1_000_000, 1_000_000});

        assertEquals(2, registry.get("flover.rank.compute").tag("rank", "1").timer().count());
        assertEquals(13.5, registry.get("flover.rank.compute").tag("rank", "1").timer().totalTime(TimeUnit.MILLISECONDS));
        assertEquals(4, registry.get("flover.rank.collective").tag("rank", "2").timer().totalTime(TimeUnit.MILLISECONDS));
        assertEquals(0.0005, registry.get("flover.rank.straggler.lag").gauge().value(), 1e-12, "the last step's lag");
    }

    @Test
    void stepPhasesAreTaggedByPhase() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        ServingMetrics metrics = new ServingMetrics(registry);
        metrics.phase("plan", 1_000);
        metrics.phase("wait", 3_000_000);
        metrics.phase("wait", 1_000_000);
        assertEquals(1, registry.get("flover.step.phase").tag("phase", "plan").timer().count());
        assertEquals(4, registry.get("flover.step.phase").tag("phase", "wait").timer().totalTime(TimeUnit.MILLISECONDS));
    }
}
