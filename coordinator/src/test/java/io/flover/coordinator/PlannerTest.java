package io.flover.coordinator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.coordinator.Planner.Live;
import io.flover.coordinator.Planner.Waiting;
import io.flover.coordinator.StepPlan.Admit;
import io.flover.coordinator.StepPlan.Cancel;
import io.flover.coordinator.StepPlan.Drop;
import io.flover.coordinator.StepPlan.Grow;
import io.flover.coordinator.StepPlan.Preempt;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The planner's decisions alone: no model, no threads, no pool; blocks of 4 positions throughout. */
class PlannerTest {
    private static final Policy FUSION = new Policy.Fusion();

    private static SchedulerConfig config(Policy policy, int maxBatch, int maxStepTokens) {
        return new SchedulerConfig(policy, maxBatch, maxStepTokens, 100, true, 4, 0);
    }

    /** A plan whose step may carry the configuration's whole token budget (no time budget). */
    private static StepPlan plan(SchedulerConfig config, List<Live> running, List<Waiting> waiting, int freeBlocks,
                                 long oldestWaitNanos) {
        return Planner.plan(config, config.maxStepTokens(), running, waiting, freeBlocks, oldestWaitNanos);
    }

    /** A live sequence that decodes next: {@code length} tokens, all but the last computed. */
    private static Live decoding(long id, int length, int blocks) {
        return new Live(id, length, length - 1, blocks, false, false);
    }

    @Test
    void fusionAdmitsEveryoneWhoFitsInArrivalOrderAndDecodesBeforePrefilling() {
        List<Live> running = List.of(decoding(1, 5, 2));
        List<Waiting> waiting = List.of(new Waiting(2, 6, false), new Waiting(3, 3, false));
        StepPlan plan = plan(config(FUSION, 8, 64), running, waiting, 10, 0);

        assertEquals(List.of(new Admit(2, 1, 2), new Admit(3, 2, 1)), plan.actions());
        assertArrayEquals(new int[] {1, 6, 3}, plan.chunks());
        assertTrue(plan.runs());
    }

    @Test
    void admissionKeepsOneSpareBlockPerLiveSequence() {
        List<Live> running = List.of(decoding(1, 2, 1), decoding(2, 2, 1));
        // 4 free: the newcomer needs 3, which would leave 1 for 2 live sequences (3 with it)
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(new Waiting(3, 12, false)), 4, 0);
        assertEquals(List.of(), plan.actions());
        assertArrayEquals(new int[] {1, 1}, plan.chunks());

        plan = plan(config(FUSION, 8, 64), running, List.of(new Waiting(3, 12, false)), 5, 0);
        assertEquals(List.of(new Admit(3, 2, 3)), plan.actions());
    }

    @Test
    void admissionStopsAtTheFirstRequestThatDoesNotFitSoNoneOvertakesIt() {
        StepPlan plan = plan(config(FUSION, 8, 64), List.of(),
                List.of(new Waiting(1, 4, false), new Waiting(2, 40, false), new Waiting(3, 1, false)), 5, 0);
        assertEquals(List.of(new Admit(1, 0, 1)), plan.actions());
    }

    @Test
    void theBatchNeverOutgrowsItsSlots() {
        StepPlan plan = plan(config(FUSION, 2, 64), List.of(decoding(1, 2, 1)),
                List.of(new Waiting(2, 1, false), new Waiting(3, 1, false)), 100, 0);
        assertEquals(List.of(new Admit(2, 1, 1)), plan.actions());
    }

    @Test
    void dynamicBatchingWaitsForAFullBatchOrTheDelayThenAdmitsNobodyWhileItRuns() {
        Policy dynamic = new Policy.DynamicBatching(3, Duration.ofMillis(10));
        List<Waiting> two = List.of(new Waiting(1, 1, false), new Waiting(2, 1, false));
        assertFalse(plan(config(dynamic, 8, 64), List.of(), two, 100, 0).runs(), "2 of 3, no delay yet");

        StepPlan late = plan(config(dynamic, 8, 64), List.of(), two, 100, Duration.ofMillis(10).toNanos());
        assertEquals(2, late.actions().size());

        List<Waiting> four = List.of(new Waiting(1, 1, false), new Waiting(2, 1, false), new Waiting(3, 1, false),
                new Waiting(4, 1, false));
        StepPlan full = plan(config(dynamic, 8, 64), List.of(), four, 100, 0);
        assertEquals(List.of(new Admit(1, 0, 1), new Admit(2, 1, 1), new Admit(3, 2, 1)), full.actions());

        StepPlan running = plan(config(dynamic, 8, 64), List.of(decoding(1, 2, 1)), four, 100, Long.MAX_VALUE);
        assertEquals(List.of(), running.actions());
    }

    @Test
    void sequentialRunsOneRequestAtATime() {
        List<Waiting> two = List.of(new Waiting(1, 1, false), new Waiting(2, 1, false));
        SchedulerConfig sequential = config(Policy.sequential(), 8, 64);
        assertEquals(List.of(new Admit(1, 0, 1)), plan(sequential, List.of(), two, 100, 0).actions());
        assertEquals(List.of(), plan(sequential, List.of(decoding(1, 2, 1)), two, 100, 0).actions());
    }

    @Test
    void longPromptsArePrefilledInChunksWithWhatTheDecodersLeaveOfTheBudget() {
        List<Live> running = List.of(new Live(1, 30, 0, 8, false, false), decoding(2, 5, 2),
                new Live(3, 20, 0, 5, false, false));
        StepPlan plan = plan(config(FUSION, 8, 16), running, List.of(), 100, 0);
        assertArrayEquals(new int[] {15, 1, 0}, plan.chunks(), "decode first; the first prompt takes the rest");

        running = List.of(new Live(1, 30, 15, 8, false, false), decoding(2, 6, 2), new Live(3, 20, 0, 5, false, false));
        plan = plan(config(FUSION, 8, 16), running, List.of(), 100, 0);
        assertArrayEquals(new int[] {15, 1, 0}, plan.chunks());
    }

    @Test
    void aTimeBudgetShortensPromptChunksButEveryStepAdvancesAPromptByABlock() {
        List<Live> running = List.of(new Live(1, 30, 0, 8, false, false), decoding(2, 5, 2), decoding(3, 7, 2));
        StepPlan plan = Planner.plan(config(FUSION, 8, 64), 12, running, List.of(), 100, 0);
        assertArrayEquals(new int[] {10, 1, 1}, plan.chunks(), "12 tokens fit the budget: 2 decode, 10 of the prompt");

        plan = Planner.plan(config(FUSION, 8, 64), 2, running, List.of(), 100, 0);
        assertArrayEquals(new int[] {4, 1, 1}, plan.chunks(), "the decoders fill the budget: the prompt gets a block");

        plan = Planner.plan(config(FUSION, 8, 64), 500, running, List.of(), 100, 0);
        assertArrayEquals(new int[] {30, 1, 1}, plan.chunks(), "never more than max step tokens (64)");
        plan = Planner.plan(config(FUSION, 8, 20), 500, running, List.of(), 100, 0);
        assertArrayEquals(new int[] {18, 1, 1}, plan.chunks());
    }

    @Test
    void aSequenceGrowsIntoANewBlockWhenItsChunkCrossesABoundary() {
        List<Live> running = List.of(decoding(1, 4, 1), decoding(2, 5, 2), new Live(3, 9, 0, 3, false, false));
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(), 10, 0);
        // 1 writes position 3 (block 0, held); 2 writes position 4 (block 1, held); 3 prefills 9 into its 3 blocks
        assertEquals(List.of(), plan.actions());

        running = List.of(decoding(1, 5, 1), decoding(2, 9, 2));
        plan = plan(config(FUSION, 8, 64), running, List.of(), 10, 0);
        assertEquals(List.of(new Grow(1, 0, 1), new Grow(2, 1, 1)), plan.actions());
        assertArrayEquals(new int[] {1, 1}, plan.chunks());
    }

    @Test
    void aTinyPoolPreemptsTheNewestAndMovesTheLastSlotIntoItsPlace() {
        // Four decoders, each about to need a fifth block... of a pool with one free block.
        List<Live> running = List.of(decoding(10, 17, 4), decoding(13, 17, 4), decoding(11, 17, 4), decoding(12, 17, 4));
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(), 1, 0);

        // slot 0 takes the free block; slot 1 finds none: 13 (the newest) goes, 12 moves from slot 3 into slot 1
        // and takes one of 13's four blocks; 11 at slot 2 takes another
        assertEquals(List.of(new Grow(10, 0, 1), new Preempt(13, 1), new Grow(12, 1, 1), new Grow(11, 2, 1)),
                plan.actions());
        assertArrayEquals(new int[] {1, 1, 1}, plan.chunks());
    }

    @Test
    void preemptionMayTakeANewcomerAdmittedInTheSamePlan() {
        // The newcomer fits under the reserve, but the decoder's growth then needs more than is left.
        List<Live> running = List.of(decoding(1, 9, 2));
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(new Waiting(2, 8, false)), 3, 0);
        assertEquals(List.of(new Admit(2, 1, 2), new Grow(1, 0, 1)), plan.actions(), "the spare block was enough");

        running = List.of(new Live(1, 13, 8, 2, false, false)); // a prefill chunk of 5 that needs 2 more blocks
        plan = plan(config(FUSION, 8, 64), running, List.of(new Waiting(2, 8, false)), 3, 0);
        assertEquals(List.of(new Admit(2, 1, 2), new Preempt(2, 1), new Grow(1, 0, 2)), plan.actions());
        assertArrayEquals(new int[] {5}, plan.chunks());
    }

    @Test
    void whenEveryoneIsPreemptedThereIsNoStep() {
        List<Live> running = List.of(new Live(1, 13, 0, 2, false, false)); // its prompt needs 2 blocks more; 1 is free
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(), 1, 0);
        assertEquals(List.of(new Preempt(1, 0)), plan.actions());
        assertArrayEquals(new int[0], plan.chunks());
        assertFalse(plan.runs());
    }

    @Test
    void aFinishedRowKeptWithoutReorderingIsNeverTheVictim() {
        // The finished row (dead, the newest) is recomputed in place and needs a block; the newest live one goes.
        List<Live> running = List.of(new Live(5, 9, 8, 2, true, false), decoding(1, 9, 2), decoding(2, 5, 2));
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(), 0, 0);
        assertEquals(List.of(new Preempt(2, 2), new Grow(5, 0, 1), new Grow(1, 1, 1)), plan.actions());
    }

    @Test
    void nothingToDoIsAnEmptyPlan() {
        StepPlan plan = plan(config(FUSION, 8, 64), List.of(), List.of(), 10, 0);
        assertEquals(List.of(), plan.actions());
        assertFalse(plan.runs());
    }

    @Test
    void aCancelledSequenceLeavesFirstAndItsBlocksServeTheSameStep() {
        // One block is free: only with the cancelled sequence's two is the newcomer admitted past the reserve.
        List<Live> running = List.of(decoding(1, 5, 2), new Live(2, 6, 5, 2, false, true), decoding(3, 2, 1));
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(new Waiting(4, 3, false)), 1, 0);

        assertEquals(List.of(new Cancel(2, 1), new Admit(4, 2, 1)), plan.actions());
        assertArrayEquals(new int[] {1, 1, 3}, plan.chunks(), "sequence 3 moved into slot 1; 2 is not in the step");
    }

    @Test
    void cancelledSequencesLeaveLastSlotFirst() {
        List<Live> running = List.of(new Live(1, 2, 1, 1, false, true), decoding(2, 2, 1),
                new Live(3, 2, 1, 1, false, true), decoding(4, 2, 1));
        StepPlan plan = plan(config(FUSION, 8, 64), running, List.of(), 0, 0);
        // 3 leaves (4 moves to slot 2), then 1 leaves (4 moves on to slot 0)
        assertEquals(List.of(new Cancel(3, 2), new Cancel(1, 0)), plan.actions());
        assertArrayEquals(new int[] {1, 1}, plan.chunks());
    }

    @Test
    void aCancelledRequestIsDroppedBeforeAdmissionAndTheNextTakesItsPlace() {
        List<Waiting> waiting = List.of(new Waiting(1, 4, true), new Waiting(2, 4, false));
        StepPlan plan = plan(config(Policy.sequential(), 8, 64), List.of(), waiting, 1, 0);
        assertEquals(List.of(new Drop(1), new Admit(2, 0, 1)), plan.actions());
        assertArrayEquals(new int[] {4}, plan.chunks());
    }

    @Test
    void withoutReorderingACancelledRowStaysDeadUntilTheRowsAfterItEnd() {
        SchedulerConfig noReorder = config(FUSION, 8, 64).withoutReordering();
        List<Live> running = List.of(new Live(1, 2, 1, 1, false, true), decoding(2, 2, 1));
        StepPlan plan = plan(noReorder, running, List.of(new Waiting(3, 2, false)), 1, 0);
        // the dead row keeps its block, so the newcomer's one would leave no spare for the two live rows
        assertEquals(List.of(new Cancel(1, 0)), plan.actions());
        assertArrayEquals(new int[] {1, 1}, plan.chunks());

        running = List.of(decoding(1, 2, 1), new Live(2, 2, 1, 2, false, true));
        plan = plan(noReorder, running, List.of(new Waiting(3, 2, false)), 1, 0);
        assertEquals(List.of(new Cancel(2, 1), new Admit(3, 1, 1)), plan.actions(), "the last row leaves at once");
    }

    @Test
    void aRowThatFinishedAlreadyIsNotCancelledAgain() {
        SchedulerConfig noReorder = config(FUSION, 8, 64).withoutReordering();
        List<Live> running = List.of(new Live(1, 2, 1, 1, true, true), decoding(2, 2, 1));
        assertEquals(List.of(), plan(noReorder, running, List.of(), 4, 0).actions());
    }
}
