package io.flover.worker.server;

import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A step from the scheduler's {@link Step} to the bytes a rank receives and back to the {@link Step} it runs: a
 * decode step of 64 sequences (one token each, every one sampling), four of which grow into a new KV block.
 * Allocation per step: {@code -prof gc} ({@code gc.alloc.rate.norm}).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class StepCodecJmh {
    private static final int SEQUENCES = 64;

    private Step step;

    @Setup
    public void setUp() {
        int[] tokens = new int[SEQUENCES];
        int[] slots = new int[SEQUENCES];
        int[] lengths = new int[SEQUENCES];
        int[] first = new int[SEQUENCES];
        boolean[] sample = new boolean[SEQUENCES];
        for (int i = 0; i < SEQUENCES; i++) {
            tokens[i] = 1000 + 397 * i % 31000;
            slots[i] = i;
            lengths[i] = 1;
            first[i] = 100 + 7 * i;
            sample[i] = true;
        }
        List<SlotOp> ops = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            ops.add(new SlotOp.AppendBlocks(16 * i, new int[] {500 + i}));
        }
        step = new Step(123_456, ops, tokens, slots, lengths, first, sample);
    }

    @Benchmark
    public Step encodeThenDecode() {
        return StepCodec.decode(StepCodec.encode(step));
    }
}
