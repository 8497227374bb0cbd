package io.flover.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.SamplingParams;
import io.flover.proto.v1.TokenIds;
import io.flover.worker.server.MalformedRequests;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Bad input at volume, from a fixed seed: requests with every field drawn from valid, edge and absurd values, and
 * raw bytes that are not a request at all. The property: each call ends, with a result or with a status that says
 * what was wrong (never INTERNAL or UNKNOWN for a well-formed message), the server keeps serving correctly, and
 * every KV block is back in the pool.
 */
class FuzzTest {
    private static final long SEED = 20261123L;
    private static final Set<Status.Code> REFUSALS = Set.of(Status.Code.INVALID_ARGUMENT, Status.Code.RESOURCE_EXHAUSTED);
    private static FloverServer server;
    private static ManagedChannel channel;

    @BeforeAll
    static void start() throws Exception {
        server = ServerTesting.start(ServerTesting.golden("llama-tiny-f32"));
        channel = ServerTesting.channel(server);
    }

    @AfterAll
    static void stop() throws Exception {
        ServerTesting.close(channel);
        server.close();
    }

    @Test
    void randomRequestsEndWithAResultOrANamedRefusal() throws Exception {
        SplittableRandom random = new SplittableRandom(SEED);
        int refused = 0;
        for (int i = 0; i < 400; i++) {
            GenerateRequest request = randomRequest(random);
            try {
                Iterator<GenerateResponse> stream = GenerationGrpc.newBlockingStub(channel)
                        .withDeadlineAfter(30, TimeUnit.SECONDS).generate(request);
                GenerateResponse last = null;
                while (stream.hasNext()) {
                    last = stream.next();
                }
                assertTrue(last != null && last.hasFinished(), "request " + i + " ended without Finished: " + request);
            } catch (StatusRuntimeException e) {
                Status s = e.getStatus();
                assertTrue(REFUSALS.contains(s.getCode()), "request " + i + " got " + s + " for " + request);
                assertTrue(s.getDescription() != null && !s.getDescription().isBlank(), "a refusal says why: " + s);
                refused++;
            }
        }
        assertTrue(refused > 50 && refused < 350, "the draws cover both good and bad requests: " + refused + " refused");
        stillServesCorrectly();
    }

    @Test
    void bytesThatAreNotARequestGetAStatusAndTheServerStaysUp() throws Exception {
        MethodDescriptor<byte[], byte[]> raw = MethodDescriptor.<byte[], byte[]>newBuilder()
                .setType(MethodDescriptor.MethodType.SERVER_STREAMING)
                .setFullMethodName(GenerationGrpc.getGenerateMethod().getFullMethodName())
                .setRequestMarshaller(MalformedRequests.BYTES).setResponseMarshaller(MalformedRequests.BYTES).build();
        SplittableRandom random = new SplittableRandom(SEED + 1);
        for (int i = 0; i < 300; i++) {
            byte[] garbage = new byte[random.nextInt(0, 512)];
            random.nextBytes(garbage);
            try {
                Iterator<byte[]> replies = ClientCalls.blockingServerStreamingCall(channel, raw,
                        io.grpc.CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS), garbage);
                while (replies.hasNext()) {
                    replies.next();
                }
            } catch (StatusRuntimeException e) {
                // Bytes that happen to parse are judged like any request; the others are refused as such.
                assertTrue(REFUSALS.contains(e.getStatus().getCode()), "garbage " + i + " ("
                        + HexFormat.of().formatHex(garbage) + ") got " + e.getStatus());
            }
        }
        stillServesCorrectly();
    }

    private static void stillServesCorrectly() throws Exception {
        ServerTesting.assertPoolWhole(server.replicas());
        ServerTesting.Golden g = ServerTesting.cases("llama-tiny-f32").getFirst();
        int[] ids = ServerTesting.Streamed.of(GenerationGrpc.newBlockingStub(channel)
                .generate(ServerTesting.ids(g.prompt(), 24).build())).ids();
        assertArrayEquals(g.greedy(), ids);
        ServerTesting.assertPoolWhole(server.replicas());
    }

    private static GenerateRequest randomRequest(SplittableRandom r) {
        GenerateRequest.Builder b = GenerateRequest.newBuilder();
        switch (r.nextInt(6)) {
            case 0 -> b.setText(randomText(r, r.nextInt(0, 40))); // this model has no tokenizer: refused
            case 1 -> {
                TokenIds.Builder ids = TokenIds.newBuilder();
                int n = r.nextInt(0, 30);
                for (int i = 0; i < n; i++) {
                    ids.addIds(r.nextInt(40) == 0 ? r.nextInt() : r.nextInt(0, 520)); // a few past the vocabulary of 512
                }
                b.setTokenIds(ids);
            }
            case 2, 3, 4 -> b.setTokenIds(TokenIds.newBuilder().addIds(r.nextInt(0, 512)));
            default -> { } // no prompt at all
        }
        b.setMaxTokens(r.nextInt(10) == 0 ? r.nextInt() : r.nextInt(0, 40));
        if (r.nextInt(4) == 0) {
            SamplingParams.Builder s = SamplingParams.newBuilder().setTemperature(randomFloat(r, 2))
                    .setTopK(r.nextInt(5) == 0 ? r.nextInt() : r.nextInt(0, 50)).setMinP(randomFloat(r, 1));
            if (r.nextBoolean()) {
                s.setTopP(randomFloat(r, 1.2f));
            }
            if (r.nextBoolean()) {
                s.setRepetitionPenalty(randomFloat(r, 3));
            }
            if (r.nextBoolean()) {
                s.setSeed(r.nextLong());
            }
            b.setSampling(s);
        }
        for (int i = r.nextInt(8) == 0 ? r.nextInt(1, 40) : 0; i > 0; i--) {
            b.addStop(randomText(r, r.nextInt(0, 8))); // this model has no tokenizer: refused
        }
        for (int i = r.nextInt(0, 3); i > 0; i--) {
            b.addStopTokenIds(r.nextInt(20) == 0 ? r.nextInt() : r.nextInt(0, 512));
        }
        b.setIgnoreEos(r.nextBoolean());
        if (r.nextBoolean()) {
            b.setRequestId(randomText(r, r.nextInt(0, 20)));
        }
        return b.build();
    }

    /** Mostly ordinary values, sometimes NaN, infinities, negatives or huge ones. */
    private static float randomFloat(SplittableRandom r, float typical) {
        return switch (r.nextInt(40)) {
            case 0 -> Float.NaN;
            case 1 -> r.nextBoolean() ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
            case 2 -> -r.nextFloat() * 10;
            case 3 -> r.nextFloat() * 1e30f;
            default -> r.nextFloat() * typical;
        };
    }

    private static String randomText(SplittableRandom r, int length) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < length; i++) {
            int cp = switch (r.nextInt(4)) {
                case 0 -> r.nextInt(0x20, 0x7f);
                case 1 -> r.nextInt(0, 0x20);
                case 2 -> r.nextInt(0x80, 0x3000);
                default -> r.nextInt(0x1F300, 0x1FAFF);
            };
            s.appendCodePoint(cp);
        }
        return s.toString();
    }

}
