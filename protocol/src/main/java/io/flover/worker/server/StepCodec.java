package io.flover.worker.server;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.WireFormat;
import io.flover.model.InvalidFieldException;
import io.flover.proto.v1.StepLogprobs;
import io.flover.proto.v1.StepResponse;
import io.flover.proto.v1.WorkerGrpc;
import io.flover.worker.SamplingParams;
import io.flover.worker.SlotOp;
import io.flover.worker.Step;
import io.flover.worker.StepResult;
import io.flover.worker.TokenLogprobs;
import io.grpc.MethodDescriptor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A {@link Step} on the wire and back. The request is written and read field by field in the wire format of
 * {@code flover.v1.StepRequest} (worker.proto is its definition), straight between the step's int arrays and the
 * bytes: no message objects and no boxed ints in between, and a rank parses a request's bytes once, checking them
 * as it goes. The answer, O(batch), goes through the generated {@code StepResponse}.
 */
public final class StepCodec {
    /**
     * {@code RunSteps} with its requests as the bytes {@link #encode(Step)} writes: the coordinator encodes a step
     * once for all the ranks of a group, and each rank decodes it where a malformed one can be answered.
     */
    public static final MethodDescriptor<byte[], StepResponse> RUN_STEPS = WorkerGrpc.getRunStepsMethod()
            .toBuilder(MalformedRequests.BYTES, WorkerGrpc.getRunStepsMethod().getResponseMarshaller()).build();

    private static final int[] NO_INTS = new int[0];
    private static final boolean[] NO_BOOLEANS = new boolean[0];

    // Field numbers, as in worker.proto.
    private static final int STEP_ID = 1;
    private static final int SLOT_OPS = 2;
    private static final int TOKENS = 3;
    private static final int SLOTS = 4;
    private static final int LENGTHS = 5;
    private static final int FIRST_POSITIONS = 6;
    private static final int SAMPLE = 7;
    private static final int PROMPT_LOGPROBS = 8;
    private static final int NEXT_PROMPT_TOKENS = 9;
    private static final int OP_ADMIT = 1;
    private static final int OP_APPEND_BLOCKS = 2;
    private static final int OP_EVICT = 3;
    private static final int OP_MOVE = 4;
    private static final int TEMPERATURE = 1;
    private static final int TOP_K = 2;
    private static final int TOP_P = 3;
    private static final int MIN_P = 4;
    private static final int REPETITION_PENALTY = 5;
    private static final int SEED = 6;
    private static final int PRESENCE_PENALTY = 7;
    private static final int FREQUENCY_PENALTY = 8;
    private static final int MIN_TOKENS = 9;
    private static final int BANNED_EARLY = 10;
    private static final int LOGPROBS = 11;
    private static final int SAMPLING_PROMPT_LOGPROBS = 12;

    private StepCodec() {
    }

    /** The bytes of the {@code StepRequest} that describes {@code step}. */
    public static byte[] encode(Step step) {
        byte[] bytes = new byte[size(step)];
        CodedOutputStream out = CodedOutputStream.newInstance(bytes);
        try {
            uint64(out, STEP_ID, step.id());
            for (SlotOp op : step.slotOps()) {
                header(out, SLOT_OPS, size(op));
                write(out, op);
            }
            packed(out, TOKENS, step.tokens());
            packed(out, SLOTS, step.slots());
            packed(out, LENGTHS, step.lengths());
            packed(out, FIRST_POSITIONS, step.firstPositions());
            packed(out, SAMPLE, step.sample());
            packed(out, PROMPT_LOGPROBS, step.promptLogprobs());
            packed(out, NEXT_PROMPT_TOKENS, step.nextPromptTokens());
            out.checkNoSpaceLeft();
        } catch (IOException e) {
            throw new UncheckedIOException("a step outgrew the size computed for it", e);
        }
        return bytes;
    }

    /**
     * The step the bytes of a {@code StepRequest} describe.
     *
     * @throws InvalidFieldException naming the field, when the bytes are not a {@code StepRequest} or describe no
     *     step (entries that disagree in number, an operation of no kind, sampling parameters out of range)
     */
    public static Step decode(byte[] request) {
        Decoder d = new Decoder(request);
        try {
            return d.step();
        } catch (InvalidProtocolBufferException e) {
            String where = d.field.isEmpty() ? "StepRequest" : "StepRequest." + d.field;
            throw new InvalidFieldException(d.field.isEmpty() ? "StepRequest" : d.field, where + ": " + e.getMessage());
        } catch (IOException e) {
            throw new UncheckedIOException(e); // reading an array does no I/O
        }
    }

    private static int size(Step step) {
        int n = uint64Size(STEP_ID, step.id());
        for (SlotOp op : step.slotOps()) {
            n += messageSize(SLOT_OPS, size(op));
        }
        return n + packedSize(TOKENS, step.tokens()) + packedSize(SLOTS, step.slots())
                + packedSize(LENGTHS, step.lengths()) + packedSize(FIRST_POSITIONS, step.firstPositions())
                + packedSize(SAMPLE, step.sample()) + packedSize(PROMPT_LOGPROBS, step.promptLogprobs())
                + packedSize(NEXT_PROMPT_TOKENS, step.nextPromptTokens());
    }

    /** A {@code SlotOp}: its one operation, a message even when all its fields are zero. */
    private static int size(SlotOp op) {
        return switch (op) {
            case SlotOp.Admit a -> messageSize(OP_ADMIT, admitSize(a));
            case SlotOp.AppendBlocks a ->
                    messageSize(OP_APPEND_BLOCKS, uint32Size(1, a.slot()) + packedSize(2, a.blocks()));
            case SlotOp.Evict e -> messageSize(OP_EVICT, uint32Size(1, e.slot()));
            case SlotOp.Move m -> messageSize(OP_MOVE, uint32Size(1, m.from()) + uint32Size(2, m.to()));
        };
    }

    private static int admitSize(SlotOp.Admit a) {
        return uint32Size(1, a.slot()) + messageSize(2, size(a.sampling())) + packedSize(3, a.blocks())
                + uint32Size(4, a.promptLength());
    }

    private static int size(SamplingParams p) {
        return floatSize(TEMPERATURE, p.temperature()) + uint32Size(TOP_K, p.topK()) + floatSize(TOP_P, p.topP())
                + floatSize(MIN_P, p.minP()) + floatSize(REPETITION_PENALTY, p.repetitionPenalty())
                + uint64Size(SEED, p.seed()) + floatSize(PRESENCE_PENALTY, p.presencePenalty())
                + floatSize(FREQUENCY_PENALTY, p.frequencyPenalty()) + uint32Size(MIN_TOKENS, p.minTokens())
                + packedSize(BANNED_EARLY, p.bannedEarly())
                + optionalSize(LOGPROBS, p.logprobs()) + optionalSize(SAMPLING_PROMPT_LOGPROBS, p.promptLogprobs());
    }

    private static void write(CodedOutputStream out, SlotOp op) throws IOException {
        switch (op) {
            case SlotOp.Admit a -> {
                header(out, OP_ADMIT, admitSize(a));
                uint32(out, 1, a.slot());
                header(out, 2, size(a.sampling()));
                write(out, a.sampling());
                packed(out, 3, a.blocks());
                uint32(out, 4, a.promptLength());
            }
            case SlotOp.AppendBlocks a -> {
                header(out, OP_APPEND_BLOCKS, uint32Size(1, a.slot()) + packedSize(2, a.blocks()));
                uint32(out, 1, a.slot());
                packed(out, 2, a.blocks());
            }
            case SlotOp.Evict e -> {
                header(out, OP_EVICT, uint32Size(1, e.slot()));
                uint32(out, 1, e.slot());
            }
            case SlotOp.Move m -> {
                header(out, OP_MOVE, uint32Size(1, m.from()) + uint32Size(2, m.to()));
                uint32(out, 1, m.from());
                uint32(out, 2, m.to());
            }
        }
    }

    private static void write(CodedOutputStream out, SamplingParams p) throws IOException {
        float32(out, TEMPERATURE, p.temperature());
        uint32(out, TOP_K, p.topK());
        float32(out, TOP_P, p.topP());
        float32(out, MIN_P, p.minP());
        float32(out, REPETITION_PENALTY, p.repetitionPenalty());
        uint64(out, SEED, p.seed());
        float32(out, PRESENCE_PENALTY, p.presencePenalty());
        float32(out, FREQUENCY_PENALTY, p.frequencyPenalty());
        uint32(out, MIN_TOKENS, p.minTokens());
        packed(out, BANNED_EARLY, p.bannedEarly());
        optional(out, LOGPROBS, p.logprobs());
        optional(out, SAMPLING_PROMPT_LOGPROBS, p.promptLogprobs());
    }

    // Writers and their sizes. As protobuf does, proto3 fields at their default are left out.

    private static int uint32Size(int field, int v) {
        return v == 0 ? 0 : CodedOutputStream.computeUInt32Size(field, v);
    }

    private static int uint64Size(int field, long v) {
        return v == 0 ? 0 : CodedOutputStream.computeUInt64Size(field, v);
    }

    private static int floatSize(int field, float v) {
        return Float.floatToRawIntBits(v) == 0 ? 0 : CodedOutputStream.computeFloatSize(field, v);
    }

    /** A proto3 optional uint32: -1 for unset, and written even when 0. */
    private static int optionalSize(int field, int v) {
        return v >= 0 ? CodedOutputStream.computeUInt32Size(field, v) : 0;
    }

    private static int messageSize(int field, int bytes) {
        return CodedOutputStream.computeTagSize(field) + CodedOutputStream.computeUInt32SizeNoTag(bytes) + bytes;
    }

    private static int packedSize(int field, int[] values) {
        return values.length == 0 ? 0 : messageSize(field, packedBytes(values));
    }

    private static int packedSize(int field, boolean[] values) {
        return values.length == 0 ? 0 : messageSize(field, values.length);
    }

    private static int packedBytes(int[] values) {
        int n = 0;
        for (int v : values) {
            n += CodedOutputStream.computeUInt32SizeNoTag(v);
        }
        return n;
    }

    private static void uint32(CodedOutputStream out, int field, int v) throws IOException {
        if (v != 0) {
            out.writeUInt32(field, v);
        }
    }

    private static void uint64(CodedOutputStream out, int field, long v) throws IOException {
        if (v != 0) {
            out.writeUInt64(field, v);
        }
    }

    private static void float32(CodedOutputStream out, int field, float v) throws IOException {
        if (Float.floatToRawIntBits(v) != 0) {
            out.writeFloat(field, v);
        }
    }

    private static void optional(CodedOutputStream out, int field, int v) throws IOException {
        if (v >= 0) {
            out.writeUInt32(field, v);
        }
    }

    /** The tag and length of a length-delimited field of {@code bytes} bytes. */
    private static void header(CodedOutputStream out, int field, int bytes) throws IOException {
        out.writeTag(field, WireFormat.WIRETYPE_LENGTH_DELIMITED);
        out.writeUInt32NoTag(bytes);
    }

    private static void packed(CodedOutputStream out, int field, int[] values) throws IOException {
        if (values.length > 0) {
            header(out, field, packedBytes(values));
            for (int v : values) {
                out.writeUInt32NoTag(v);
            }
        }
    }

    private static void packed(CodedOutputStream out, int field, boolean[] values) throws IOException {
        if (values.length > 0) {
            header(out, field, values.length);
            for (boolean v : values) {
                out.writeBoolNoTag(v);
            }
        }
    }

    /** Reads one request, keeping the name of the field it is in, for the error a malformed one gets. */
    private static final class Decoder {
        private final byte[] bytes;
        private final CodedInputStream in;
        /** The field read last, where a malformed one is: none before the first. */
        private String field = "";

        Decoder(byte[] bytes) {
            this.bytes = bytes;
            this.in = CodedInputStream.newInstance(bytes);
        }

        Step step() throws IOException {
            long id = 0;
            List<SlotOp> ops = new ArrayList<>();
            int[] tokens = NO_INTS;
            int[] slots = NO_INTS;
            int[] lengths = NO_INTS;
            int[] first = NO_INTS;
            boolean[] sample = NO_BOOLEANS;
            boolean[] promptLogprobs = NO_BOOLEANS;
            int[] nextPromptTokens = NO_INTS;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int type = WireFormat.getTagWireType(tag);
                switch (WireFormat.getTagFieldNumber(tag)) {
                    case STEP_ID -> id = varint("step_id", type);
                    case SLOT_OPS -> ops.add(slotOp(ops.size(), type));
                    case TOKENS -> tokens = ints("tokens", type, tokens);
                    case SLOTS -> slots = ints("slots", type, slots);
                    case LENGTHS -> lengths = ints("lengths", type, lengths);
                    case FIRST_POSITIONS -> first = ints("first_positions", type, first);
                    case SAMPLE -> sample = booleans("sample", type, sample);
                    case PROMPT_LOGPROBS -> promptLogprobs = booleans("prompt_logprobs", type, promptLogprobs);
                    case NEXT_PROMPT_TOKENS -> nextPromptTokens = ints("next_prompt_tokens", type, nextPromptTokens);
                    default -> in.skipField(tag);
                }
            }
            entries("lengths", lengths.length, slots.length);
            entries("first_positions", first.length, slots.length);
            entries("sample", sample.length, slots.length);
            if (promptLogprobs.length > 0) {
                entries("prompt_logprobs", promptLogprobs.length, slots.length);
            }
            int continued = 0;
            for (int i = 0; i < promptLogprobs.length; i++) {
                continued += promptLogprobs[i] && !sample[i] ? 1 : 0;
            }
            if (nextPromptTokens.length != continued) {
                throw new InvalidFieldException("next_prompt_tokens", "StepRequest.next_prompt_tokens has "
                        + nextPromptTokens.length + " entries where " + continued + " prompts go on past the step");
            }
            long fed = 0;
            for (int length : lengths) {
                fed += Integer.toUnsignedLong(length);
            }
            if (fed != tokens.length) {
                throw new InvalidFieldException("tokens", "StepRequest.tokens: " + tokens.length
                        + " tokens where the entries' lengths add up to " + fed);
            }
            return new Step(id, ops, tokens, slots, lengths, first, sample, promptLogprobs, nextPromptTokens);
        }

        private SlotOp slotOp(int index, int type) throws IOException {
            String at = "slot_ops[" + index + "]";
            int limit = enter(at, type);
            SlotOp op = null;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int kind = WireFormat.getTagFieldNumber(tag);
                int wire = WireFormat.getTagWireType(tag);
                op = switch (kind) {
                    case OP_ADMIT -> admit(at + ".admit", wire);
                    case OP_APPEND_BLOCKS -> appendBlocks(at + ".append_blocks", wire);
                    case OP_EVICT -> evict(at + ".evict", wire);
                    case OP_MOVE -> move(at + ".move", wire);
                    default -> {
                        in.skipField(tag);
                        yield op;
                    }
                };
            }
            in.popLimit(limit);
            if (op == null) {
                throw new InvalidFieldException("slot_ops", "StepRequest." + at + ": an operation with no kind set");
            }
            return op;
        }

        private SlotOp admit(String at, int type) throws IOException {
            int limit = enter(at, type);
            int slot = 0;
            int promptLength = 0;
            int[] blocks = NO_INTS;
            SamplingParams sampling = null;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int wire = WireFormat.getTagWireType(tag);
                switch (WireFormat.getTagFieldNumber(tag)) {
                    case 1 -> slot = (int) varint(at + ".slot", wire);
                    case 2 -> sampling = sampling(at + ".sampling", wire);
                    case 3 -> blocks = ints(at + ".blocks", wire, blocks);
                    case 4 -> promptLength = (int) varint(at + ".prompt_length", wire);
                    default -> in.skipField(tag);
                }
            }
            in.popLimit(limit);
            if (sampling == null) {
                throw new InvalidFieldException("slot_ops", "StepRequest." + at + ".sampling is missing");
            }
            return new SlotOp.Admit(slot, sampling, promptLength, blocks);
        }

        private SamplingParams sampling(String at, int type) throws IOException {
            int limit = enter(at, type);
            float temperature = 0;
            float topP = 0;
            float minP = 0;
            float repetitionPenalty = 0;
            float presencePenalty = 0;
            float frequencyPenalty = 0;
            int topK = 0;
            int minTokens = 0;
            int logprobs = -1;
            int promptLogprobs = -1;
            long seed = 0;
            int[] bannedEarly = NO_INTS;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int wire = WireFormat.getTagWireType(tag);
                switch (WireFormat.getTagFieldNumber(tag)) {
                    case TEMPERATURE -> temperature = float32(at + ".temperature", wire);
                    case TOP_K -> topK = (int) varint(at + ".top_k", wire);
                    case TOP_P -> topP = float32(at + ".top_p", wire);
                    case MIN_P -> minP = float32(at + ".min_p", wire);
                    case REPETITION_PENALTY -> repetitionPenalty = float32(at + ".repetition_penalty", wire);
                    case SEED -> seed = varint(at + ".seed", wire);
                    case PRESENCE_PENALTY -> presencePenalty = float32(at + ".presence_penalty", wire);
                    case FREQUENCY_PENALTY -> frequencyPenalty = float32(at + ".frequency_penalty", wire);
                    case MIN_TOKENS -> minTokens = (int) varint(at + ".min_tokens", wire);
                    case BANNED_EARLY -> bannedEarly = ints(at + ".banned_early", wire, bannedEarly);
                    case LOGPROBS -> logprobs = (int) varint(at + ".logprobs", wire);
                    case SAMPLING_PROMPT_LOGPROBS -> promptLogprobs = (int) varint(at + ".prompt_logprobs", wire);
                    default -> in.skipField(tag);
                }
            }
            in.popLimit(limit);
            try {
                return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, presencePenalty,
                        frequencyPenalty, minTokens, bannedEarly, logprobs, promptLogprobs, seed);
            } catch (InvalidFieldException e) {
                throw new InvalidFieldException(at + "." + e.field(), "StepRequest." + at + "." + e.getMessage());
            }
        }

        private SlotOp appendBlocks(String at, int type) throws IOException {
            int limit = enter(at, type);
            int slot = 0;
            int[] blocks = NO_INTS;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int wire = WireFormat.getTagWireType(tag);
                switch (WireFormat.getTagFieldNumber(tag)) {
                    case 1 -> slot = (int) varint(at + ".slot", wire);
                    case 2 -> blocks = ints(at + ".blocks", wire, blocks);
                    default -> in.skipField(tag);
                }
            }
            in.popLimit(limit);
            return new SlotOp.AppendBlocks(slot, blocks);
        }

        private SlotOp evict(String at, int type) throws IOException {
            int limit = enter(at, type);
            int slot = 0;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                if (WireFormat.getTagFieldNumber(tag) == 1) {
                    slot = (int) varint(at + ".slot", WireFormat.getTagWireType(tag));
                } else {
                    in.skipField(tag);
                }
            }
            in.popLimit(limit);
            return new SlotOp.Evict(slot);
        }

        private SlotOp move(String at, int type) throws IOException {
            int limit = enter(at, type);
            int from = 0;
            int to = 0;
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int wire = WireFormat.getTagWireType(tag);
                switch (WireFormat.getTagFieldNumber(tag)) {
                    case 1 -> from = (int) varint(at + ".from", wire);
                    case 2 -> to = (int) varint(at + ".to", wire);
                    default -> in.skipField(tag);
                }
            }
            in.popLimit(limit);
            return new SlotOp.Move(from, to);
        }

        /** Starts reading the nested message {@code name}; returns the limit to pop once it is read. */
        private int enter(String name, int type) throws IOException {
            expect(name, type, WireFormat.WIRETYPE_LENGTH_DELIMITED);
            return in.pushLimit(in.readRawVarint32());
        }

        private long varint(String name, int type) throws IOException {
            expect(name, type, WireFormat.WIRETYPE_VARINT);
            return in.readRawVarint64();
        }

        private float float32(String name, int type) throws IOException {
            expect(name, type, WireFormat.WIRETYPE_FIXED32);
            return in.readFloat();
        }

        /** A repeated uint32 field: packed (as protobuf writes it) or one value per tag; appended to {@code sofar}. */
        private int[] ints(String name, int type, int[] sofar) throws IOException {
            field = name;
            if (type == WireFormat.WIRETYPE_VARINT) {
                return append(sofar, new int[] {in.readUInt32()});
            }
            expect(name, type, WireFormat.WIRETYPE_LENGTH_DELIMITED);
            int limit = in.pushLimit(in.readRawVarint32());
            int[] values = new int[varints(in.getBytesUntilLimit())];
            for (int i = 0; i < values.length; i++) {
                values[i] = in.readUInt32();
            }
            in.popLimit(limit);
            return append(sofar, values);
        }

        private boolean[] booleans(String name, int type, boolean[] sofar) throws IOException {
            field = name;
            if (type == WireFormat.WIRETYPE_VARINT) {
                return append(sofar, new boolean[] {in.readBool()});
            }
            expect(name, type, WireFormat.WIRETYPE_LENGTH_DELIMITED);
            int limit = in.pushLimit(in.readRawVarint32());
            boolean[] values = new boolean[varints(in.getBytesUntilLimit())];
            for (int i = 0; i < values.length; i++) {
                values[i] = in.readBool();
            }
            in.popLimit(limit);
            return append(sofar, values);
        }

        /**
         * How many varints the next {@code length} bytes hold: one ends at each byte without the continuation bit.
         * A last one cut off by the length fails when it is read.
         */
        private int varints(int length) {
            int start = in.getTotalBytesRead();
            int n = 0;
            for (int i = start; i < start + length; i++) {
                n += bytes[i] >= 0 ? 1 : 0;
            }
            return n + (length > 0 && bytes[start + length - 1] < 0 ? 1 : 0);
        }

        private void expect(String name, int type, int wanted) throws InvalidProtocolBufferException {
            field = name;
            if (type != wanted) {
                throw new InvalidProtocolBufferException("wire type " + type + " where " + wanted + " belongs");
            }
        }

        private void entries(String name, int count, int slots) {
            if (count != slots) {
                throw new InvalidFieldException(name, "StepRequest." + name + " has " + count
                        + " entries where slots has " + slots);
            }
        }
    }

    private static int[] append(int[] a, int[] b) {
        if (a.length == 0) {
            return b;
        }
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static boolean[] append(boolean[] a, boolean[] b) {
        if (a.length == 0) {
            return b;
        }
        boolean[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** A step's answer as a rank sends it. */
    public static StepResponse.Builder encode(StepResult result) {
        StepResponse.Builder b = StepResponse.newBuilder();
        for (int id : result.sampled()) {
            b.addSampled(id);
        }
        if (result.logprobs() != null) {
            for (TokenLogprobs l : result.logprobs()) {
                b.addLogprobs(encode(l));
            }
        }
        if (result.promptLogprobs() != null) {
            for (TokenLogprobs l : result.promptLogprobs()) {
                b.addPromptLogprobs(encode(l));
            }
        }
        return b;
    }

    private static StepLogprobs.Builder encode(TokenLogprobs l) {
        StepLogprobs.Builder e = StepLogprobs.newBuilder().setAsked(l != null);
        if (l != null) {
            e.setLogprob(l.logprob());
            for (int id : l.topIds()) {
                e.addTopIds(id);
            }
            for (float v : l.topLogprobs()) {
                e.addTopLogprobs(v);
            }
        }
        return e;
    }

    /** A rank's answer as the scheduler takes it. */
    public static StepResult decode(StepResponse r) {
        int[] sampled = new int[r.getSampledCount()];
        for (int i = 0; i < sampled.length; i++) {
            sampled[i] = r.getSampled(i);
        }
        return new StepResult(sampled, decode(r.getLogprobsList()), decode(r.getPromptLogprobsList()));
    }

    /** Null for none; an entry that did not ask is null too. */
    private static TokenLogprobs[] decode(List<StepLogprobs> entries) {
        if (entries.isEmpty()) {
            return null;
        }
        TokenLogprobs[] logprobs = new TokenLogprobs[entries.size()];
        for (int i = 0; i < logprobs.length; i++) {
            StepLogprobs e = entries.get(i);
            if (e.getAsked()) {
                int[] topIds = new int[e.getTopIdsCount()];
                float[] top = new float[e.getTopLogprobsCount()];
                for (int k = 0; k < topIds.length; k++) {
                    topIds[k] = e.getTopIds(k);
                }
                for (int k = 0; k < top.length; k++) {
                    top[k] = e.getTopLogprobs(k);
                }
                logprobs[i] = new TokenLogprobs(e.getLogprob(), topIds, top);
            }
        }
        return logprobs;
    }
}
