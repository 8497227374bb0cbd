package io.flover.worker.server;

import io.flover.proto.v1.StepRequest;
import io.flover.proto.v1.StepLogprobs;
import io.flover.proto.v1.StepResponse;
import io.flover.proto.v1.StepSampling;
import io.flover.worker.SamplingParams;
import io.flover.worker.StepResult;
import io.flover.worker.TokenLogprobs;
import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import java.util.ArrayList;
import java.util.List;

/** A {@link Step} on the wire ({@code flover.v1.StepRequest}) and back. */
public final class StepCodec {
    private StepCodec() {
    }

    public static StepRequest encode(Step step) {
        StepRequest.Builder b = StepRequest.newBuilder().setStepId(step.id());
        for (SlotOp op : step.slotOps()) {
            var o = io.flover.proto.v1.SlotOp.newBuilder();
            switch (op) {
                case SlotOp.Admit a -> o.setAdmit(io.flover.proto.v1.Admit.newBuilder().setSlot(a.slot())
                        .setSampling(encode(a.sampling())).setPromptLength(a.promptLength())
                        .addAllBlocks(list(a.blocks())));
                case SlotOp.AppendBlocks a -> o.setAppendBlocks(io.flover.proto.v1.AppendBlocks.newBuilder()
                        .setSlot(a.slot()).addAllBlocks(list(a.blocks())));
                case SlotOp.Evict e -> o.setEvict(io.flover.proto.v1.Evict.newBuilder().setSlot(e.slot()));
                case SlotOp.Move m -> o.setMove(io.flover.proto.v1.Move.newBuilder().setFrom(m.from()).setTo(m.to()));
            }
            b.addSlotOps(o);
        }
        b.addAllTokens(list(step.tokens())).addAllSlots(list(step.slots())).addAllLengths(list(step.lengths()))
                .addAllFirstPositions(list(step.firstPositions()));
        for (boolean s : step.sample()) {
            b.addSample(s);
        }
        return b.build();
    }

    /** The step a request describes; IllegalArgumentException if its fields disagree. */
    public static Step decode(StepRequest r) {
        List<SlotOp> ops = new ArrayList<>(r.getSlotOpsCount());
        for (io.flover.proto.v1.SlotOp o : r.getSlotOpsList()) {
            ops.add(switch (o.getOpCase()) {
                case ADMIT -> new SlotOp.Admit(o.getAdmit().getSlot(), decode(o.getAdmit().getSampling()),
                        o.getAdmit().getPromptLength(),
                        array(o.getAdmit().getBlocksList()));
                case APPEND_BLOCKS -> new SlotOp.AppendBlocks(o.getAppendBlocks().getSlot(),
                        array(o.getAppendBlocks().getBlocksList()));
                case EVICT -> new SlotOp.Evict(o.getEvict().getSlot());
                case MOVE -> new SlotOp.Move(o.getMove().getFrom(), o.getMove().getTo());
                case OP_NOT_SET -> throw new IllegalArgumentException("slot_ops: an operation with no kind set");
            });
        }
        boolean[] sample = new boolean[r.getSampleCount()];
        for (int i = 0; i < sample.length; i++) {
            sample[i] = r.getSample(i);
        }
        return new Step(r.getStepId(), ops, array(r.getTokensList()), array(r.getSlotsList()), array(r.getLengthsList()),
                array(r.getFirstPositionsList()), sample);
    }

    private static StepSampling encode(SamplingParams p) {
        StepSampling.Builder b = StepSampling.newBuilder().setTemperature(p.temperature()).setTopK(p.topK()).setTopP(p.topP())
                .setMinP(p.minP()).setRepetitionPenalty(p.repetitionPenalty()).setPresencePenalty(p.presencePenalty())
                .setFrequencyPenalty(p.frequencyPenalty()).setMinTokens(p.minTokens())
                .addAllBannedEarly(list(p.bannedEarly())).setSeed(p.seed());
        if (p.logprobs() >= 0) {
            b.setLogprobs(p.logprobs());
        }
        return b.build();
    }

    private static SamplingParams decode(StepSampling s) {
        return new SamplingParams(s.getTemperature(), s.getTopK(), s.getTopP(), s.getMinP(), s.getRepetitionPenalty(),
                s.getPresencePenalty(), s.getFrequencyPenalty(), s.getMinTokens(), array(s.getBannedEarlyList()),
                s.hasLogprobs() ? s.getLogprobs() : -1, s.getSeed());
    }

    /** A step's answer as a rank sends it. */
    public static StepResponse.Builder encode(StepResult result) {
        StepResponse.Builder b = StepResponse.newBuilder().addAllSampled(list(result.sampled()));
        if (result.logprobs() != null) {
            for (TokenLogprobs l : result.logprobs()) {
                StepLogprobs.Builder e = StepLogprobs.newBuilder().setAsked(l != null);
                if (l != null) {
                    e.setLogprob(l.logprob()).addAllTopIds(list(l.topIds()));
                    for (float v : l.topLogprobs()) {
                        e.addTopLogprobs(v);
                    }
                }
                b.addLogprobs(e);
            }
        }
        return b;
    }

    /** A rank's answer as the scheduler takes it. */
    public static StepResult decode(StepResponse r) {
        int[] sampled = array(r.getSampledList());
        if (r.getLogprobsCount() == 0) {
            return StepResult.of(sampled);
        }
        TokenLogprobs[] logprobs = new TokenLogprobs[r.getLogprobsCount()];
        for (int i = 0; i < logprobs.length; i++) {
            StepLogprobs e = r.getLogprobs(i);
            if (e.getAsked()) {
                float[] top = new float[e.getTopLogprobsCount()];
                for (int k = 0; k < top.length; k++) {
                    top[k] = e.getTopLogprobs(k);
                }
                logprobs[i] = new TokenLogprobs(e.getLogprob(), array(e.getTopIdsList()), top);
            }
        }
        return new StepResult(sampled, logprobs);
    }

    private static List<Integer> list(int[] values) {
        List<Integer> l = new ArrayList<>(values.length);
        for (int v : values) {
            l.add(v);
        }
        return l;
    }

    private static int[] array(List<Integer> values) {
        int[] a = new int[values.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = values.get(i);
        }
        return a;
    }
}
