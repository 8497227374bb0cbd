package io.flover.worker.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.flover.worker.SamplingParams;
import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.TokenLogprobs;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What a remote rank is sent and answers survives the wire. */
class StepCodecTest {
    @Test
    void samplingAndLogprobsRoundTrip() {
        SamplingParams p = new SamplingParams(0.7f, 40, 0.9f, 0.05f, 1.1f, 0.5f, -0.25f, 3, new int[] {2, 9}, 5, 42);
        Step step = StepCodec.decode(StepCodec.encode(new Step(7, List.of(new SlotOp.Admit(1, p, 11, new int[] {4})),
                new int[] {1}, new int[] {1}, new int[] {1}, new int[] {0}, new boolean[] {true})));
        SlotOp.Admit admit = (SlotOp.Admit) step.slotOps().getFirst();
        SamplingParams q = admit.sampling();
        assertEquals(11, admit.promptLength());
        assertEquals(List.of(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(), p.presencePenalty(),
                p.frequencyPenalty(), p.minTokens(), p.logprobs(), p.seed()), List.of(q.temperature(), q.topK(),
                q.topP(), q.minP(), q.repetitionPenalty(), q.presencePenalty(), q.frequencyPenalty(), q.minTokens(),
                q.logprobs(), q.seed()));
        assertArrayEquals(p.bannedEarly(), q.bannedEarly());
        SamplingParams none = ((SlotOp.Admit) StepCodec.decode(StepCodec.encode(new Step(8, List.of(
                new SlotOp.Admit(0, SamplingParams.GREEDY, 1, new int[] {0})), new int[0], new int[0], new int[0],
                new int[0], new boolean[0]))).slotOps().getFirst()).sampling();
        assertEquals(-1, none.logprobs());

        StepResult result = new StepResult(new int[] {3, 4}, new TokenLogprobs[] {
                new TokenLogprobs(-0.5f, new int[] {3, 8}, new float[] {-0.5f, -1.5f}), null});
        StepResult back = StepCodec.decode(StepCodec.encode(result).build());
        assertArrayEquals(result.sampled(), back.sampled());
        assertEquals(-0.5f, back.logprobs()[0].logprob());
        assertArrayEquals(new int[] {3, 8}, back.logprobs()[0].topIds());
        assertArrayEquals(new float[] {-0.5f, -1.5f}, back.logprobs()[0].topLogprobs());
        assertNull(back.logprobs()[1]);
        assertNull(StepCodec.decode(StepCodec.encode(StepResult.of(new int[] {1})).build()).logprobs());
    }
}
