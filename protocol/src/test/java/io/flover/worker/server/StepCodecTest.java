package io.flover.worker.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import com.google.protobuf.WireFormat;
import io.flover.model.InvalidFieldException;
import io.flover.proto.v1.Admit;
import io.flover.proto.v1.AppendBlocks;
import io.flover.proto.v1.Evict;
import io.flover.proto.v1.Move;
import io.flover.proto.v1.StepRequest;
import io.flover.proto.v1.StepSampling;
import io.flover.worker.SamplingParams;
import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.TokenLogprobs;
import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What a remote rank is sent and answers survives the wire. */
class StepCodecTest {
    @Test
    void samplingAndLogprobsRoundTrip() {
        SamplingParams p = new SamplingParams(0.7f, 40, 0.9f, 0.05f, 1.1f, 0.5f, -0.25f, 3, new int[] {2, 9}, 5, 3, 42);
        Step step = StepCodec.decode(StepCodec.encode(new Step(7, List.of(new SlotOp.Admit(1, p, 11, new int[] {4})),
                new int[] {1}, new int[] {1}, new int[] {1}, new int[] {0}, new boolean[] {true})));
        SlotOp.Admit admit = (SlotOp.Admit) step.slotOps().getFirst();
        SamplingParams q = admit.sampling();
        assertEquals(11, admit.promptLength());
        assertEquals(List.of(p.temperature(), p.topK(), p.topP(), p.minP(), p.repetitionPenalty(), p.presencePenalty(),
                p.frequencyPenalty(), p.minTokens(), p.logprobs(), p.promptLogprobs(), p.seed()), List.of(
                q.temperature(), q.topK(), q.topP(), q.minP(), q.repetitionPenalty(), q.presencePenalty(),
                q.frequencyPenalty(), q.minTokens(), q.logprobs(), q.promptLogprobs(), q.seed()));
        assertArrayEquals(p.bannedEarly(), q.bannedEarly());
        SamplingParams none = ((SlotOp.Admit) StepCodec.decode(StepCodec.encode(new Step(8, List.of(
                new SlotOp.Admit(0, SamplingParams.GREEDY, 1, new int[] {0})), new int[0], new int[0], new int[0],
                new int[0], new boolean[0]))).slotOps().getFirst()).sampling();
        assertEquals(-1, none.logprobs());
        assertEquals(-1, none.promptLogprobs());

        StepResult result = new StepResult(new int[] {3, 4}, new TokenLogprobs[] {
                new TokenLogprobs(-0.5f, new int[] {3, 8}, new float[] {-0.5f, -1.5f}), null}, new TokenLogprobs[] {
                new TokenLogprobs(-2.5f, new int[] {6}, new float[] {-0.25f})});
        StepResult back = StepCodec.decode(StepCodec.encode(result).build());
        assertArrayEquals(result.sampled(), back.sampled());
        assertEquals(-0.5f, back.logprobs()[0].logprob());
        assertArrayEquals(new int[] {3, 8}, back.logprobs()[0].topIds());
        assertArrayEquals(new float[] {-0.5f, -1.5f}, back.logprobs()[0].topLogprobs());
        assertNull(back.logprobs()[1]);
        assertEquals(-2.5f, back.promptLogprobs()[0].logprob());
        assertArrayEquals(new int[] {6}, back.promptLogprobs()[0].topIds());
        assertArrayEquals(new float[] {-0.25f}, back.promptLogprobs()[0].topLogprobs());
        StepResult bare = StepCodec.decode(StepCodec.encode(StepResult.of(new int[] {1})).build());
        assertNull(bare.logprobs());
        assertNull(bare.promptLogprobs());
    }

    private static final SamplingParams SAMPLED =
            new SamplingParams(0.7f, 40, 0.9f, 0.05f, 1.1f, 0.5f, -0.25f, 3, new int[] {2, 9}, 5, 3, 42);

    /** A step with every kind of operation and every field away from its default. */
    private static Step everything() {
        return new Step(1L << 40, List.of(new SlotOp.Admit(2, SAMPLED, 11, new int[] {4, 300}),
                new SlotOp.AppendBlocks(1, new int[] {7}), new SlotOp.Evict(3), new SlotOp.Move(5, 3)),
                new int[] {1, 2, 128, 70000}, new int[] {0, 2}, new int[] {1, 3}, new int[] {9, 0},
                new boolean[] {true, false}, new boolean[] {false, true}, new int[] {300});
    }

    @Test
    void theBytesAreTheStepRequestProtobufWritesForTheSameStep() throws Exception {
        StepSampling sampling = StepSampling.newBuilder().setTemperature(0.7f).setTopK(40).setTopP(0.9f).setMinP(0.05f)
                .setRepetitionPenalty(1.1f).setPresencePenalty(0.5f).setFrequencyPenalty(-0.25f).setMinTokens(3)
                .addBannedEarly(2).addBannedEarly(9).setLogprobs(5).setPromptLogprobs(3).setSeed(42).build();
        StepRequest reference = StepRequest.newBuilder().setStepId(1L << 40)
                .addSlotOps(io.flover.proto.v1.SlotOp.newBuilder().setAdmit(Admit.newBuilder().setSlot(2)
                        .setSampling(sampling).setPromptLength(11).addBlocks(4).addBlocks(300)))
                .addSlotOps(io.flover.proto.v1.SlotOp.newBuilder().setAppendBlocks(AppendBlocks.newBuilder()
                        .setSlot(1).addBlocks(7)))
                .addSlotOps(io.flover.proto.v1.SlotOp.newBuilder().setEvict(Evict.newBuilder().setSlot(3)))
                .addSlotOps(io.flover.proto.v1.SlotOp.newBuilder().setMove(Move.newBuilder().setFrom(5).setTo(3)))
                .addTokens(1).addTokens(2).addTokens(128).addTokens(70000).addSlots(0).addSlots(2).addLengths(1)
                .addLengths(3).addFirstPositions(9).addFirstPositions(0).addSample(true).addSample(false)
                .addPromptLogprobs(false).addPromptLogprobs(true).addNextPromptTokens(300).build();

        assertEquals(reference, StepRequest.parseFrom(StepCodec.encode(everything())));
        assertEquals(describe(everything()), describe(StepCodec.decode(reference.toByteArray())));
    }

    @Test
    void everyFieldOfTheStepMessagesIsOneTheCodecWrites() throws Exception {
        StepRequest r = StepRequest.parseFrom(StepCodec.encode(everything()));
        assertAllSet(r);
        assertEquals(io.flover.proto.v1.SlotOp.getDescriptor().getFields().size(),
                r.getSlotOpsList().stream().map(io.flover.proto.v1.SlotOp::getOpCase).distinct().count(),
                "every kind of operation");
        for (io.flover.proto.v1.SlotOp op : r.getSlotOpsList()) {
            op.getAllFields().values().forEach(inner -> assertAllSet((Message) inner));
        }
        assertAllSet(r.getSlotOps(0).getAdmit().getSampling());
    }

    /** Every field but a oneof's members (one at a time) is set; a field the codec does not know would not be. */
    private static void assertAllSet(Message m) {
        for (FieldDescriptor f : m.getDescriptorForType().getFields()) {
            if (f.getRealContainingOneof() == null) {
                assertTrue(f.isRepeated() ? m.getRepeatedFieldCount(f) > 0 : m.hasField(f),
                        m.getDescriptorForType().getName() + "." + f.getName() + " is not written");
            }
        }
    }

    @Test
    void valuesOnePerTagReadLikePackedOnes() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        CodedOutputStream out = CodedOutputStream.newInstance(bytes);
        out.writeUInt32(3, 5);
        out.writeUInt32(3, 6);
        out.writeUInt32(4, 0);
        out.writeUInt32(5, 2);
        out.writeUInt32(6, 0);
        out.writeBool(7, true);
        out.writeString(99, "a field of a later version");
        out.flush();
        Step step = StepCodec.decode(bytes.toByteArray());
        assertArrayEquals(new int[] {5, 6}, step.tokens());
        assertArrayEquals(new int[] {2}, step.lengths());
    }

    @Test
    void aMalformedRequestNamesTheFieldItBreaks() {
        byte[] whole = StepCodec.encode(everything());
        assertField("first_positions", Arrays.copyOf(whole, whole.length - 13));
        assertField("slot_ops[0]", Arrays.copyOf(whole, 12));
        assertField("lengths", StepRequest.newBuilder().addTokens(1).addSlots(0).addLengths(1).addLengths(1)
                .addFirstPositions(0).addSample(true).build().toByteArray());
        assertField("tokens", StepRequest.newBuilder().addTokens(1).addSlots(0).addLengths(2).addFirstPositions(0)
                .addSample(true).build().toByteArray());
        assertField("slot_ops", StepRequest.newBuilder().addSlotOps(io.flover.proto.v1.SlotOp.getDefaultInstance())
                .build().toByteArray());
        assertField("slot_ops[0].admit.sampling.top_p", StepRequest.newBuilder().addSlotOps(
                io.flover.proto.v1.SlotOp.newBuilder().setAdmit(Admit.newBuilder().setSampling(
                        StepSampling.newBuilder().setRepetitionPenalty(1)))).build().toByteArray());
        byte[] fixed = {3 << 3 | WireFormat.WIRETYPE_FIXED32, 1, 0, 0, 0};
        assertField("tokens", fixed);
        assertField("next_prompt_tokens", StepRequest.newBuilder().addTokens(1).addSlots(0).addLengths(1)
                .addFirstPositions(0).addSample(false).addPromptLogprobs(true).build().toByteArray());
    }

    private static void assertField(String field, byte[] request) {
        InvalidFieldException e = assertThrows(InvalidFieldException.class, () -> StepCodec.decode(request));
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().startsWith("StepRequest." + field), e.getMessage());
    }

    private static String describe(Step s) {
        return s.id() + " " + s.slotOps().stream().map(op -> switch (op) {
            case SlotOp.Admit a -> "admit " + a.slot() + " " + a.promptLength() + " " + Arrays.toString(a.blocks())
                    + " " + List.of(a.sampling().temperature(), a.sampling().topK(), a.sampling().topP(),
                    a.sampling().minP(), a.sampling().repetitionPenalty(), a.sampling().presencePenalty(),
                    a.sampling().frequencyPenalty(), a.sampling().minTokens(), a.sampling().logprobs(),
                    a.sampling().promptLogprobs(), a.sampling().seed()) + Arrays.toString(a.sampling().bannedEarly());
            case SlotOp.AppendBlocks a -> "append " + a.slot() + " " + Arrays.toString(a.blocks());
            default -> op.toString();
        }).toList() + Arrays.toString(s.tokens()) + Arrays.toString(s.slots()) + Arrays.toString(s.lengths())
                + Arrays.toString(s.firstPositions()) + Arrays.toString(s.sample())
                + Arrays.toString(s.promptLogprobs()) + Arrays.toString(s.nextPromptTokens());
    }
}
