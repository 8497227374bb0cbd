package io.flover.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.flover.proto.v1.FinishReason;
import io.flover.proto.v1.Finished;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.TokenDelta;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.PrintWriter;
import java.util.Iterator;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

/** {@code generate --server}: streams one request from a Flover server and prints it as local generation does. */
final class RemoteGeneration {
    private RemoteGeneration() {
    }

    /** Fails with a one-line message on a gRPC error ({@code STATUS: description}) or a request the server failed. */
    static void run(String server, ClientFlags client, GenerateRequest request, boolean json, PrintWriter out)
            throws Exception {
        ManagedChannel channel = client.channel(target(server)).build();
        try {
            IntStream.Builder ids = IntStream.builder();
            StringBuilder text = new StringBuilder();
            Finished finished = null;
            if (!json && request.hasText()) {
                out.print(request.getText());
            }
            Iterator<GenerateResponse> stream = GenerationGrpc.newBlockingStub(channel).generate(request);
            while (stream.hasNext()) {
                GenerateResponse r = stream.next();
                if (r.hasFinished()) {
                    finished = r.getFinished();
                    continue;
                }
                TokenDelta delta = r.getDelta();
                delta.getTokenIdsList().forEach(ids::add);
                text.append(delta.getText());
                if (!json && !delta.getText().isEmpty()) {
                    out.print(delta.getText());
                    out.flush();
                }
            }
            if (finished == null) {
                throw new IllegalStateException("the server ended the stream without saying why");
            }
            if (finished.getReason() == FinishReason.FINISH_REASON_ERROR) {
                throw new IllegalStateException("the server failed the request: " + finished.getError());
            }
            int[] tokenIds = ids.build().toArray();
            if (json) {
                String reason = finished.getReason().name().replace("FINISH_REASON_", "").toLowerCase(Locale.ROOT);
                out.println(new ObjectMapper().writeValueAsString(GenerateCommand.json(tokenIds, text.toString(), reason,
                        finished.getUsage().getPromptTokens())));
            } else {
                if (text.isEmpty()) {
                    out.print(GenerateCommand.joinIds(tokenIds)); // a model without a tokenizer streams no text
                }
                out.println();
            }
        } catch (StatusRuntimeException e) {
            throw failure(e);
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** A gRPC error as one line, {@code STATUS: description}. */
    static IllegalStateException failure(StatusRuntimeException e) {
        // Transport failures carry the useful part ("Connection refused") in the cause, not the description.
        Status s = e.getStatus();
        String why = s.getDescription() == null ? "" : s.getDescription();
        String cause = s.getCause() == null ? null : s.getCause().getMessage();
        if (cause != null) {
            why = why.isEmpty() ? cause : why + " (" + cause + ")";
        }
        return new IllegalStateException(s.getCode() + ": " + why, e);
    }

    /** Checks {@code HOST:PORT} (IPv6 hosts in brackets), so a typo fails here rather than as a DNS error. */
    static String target(String server) {
        int colon = server.lastIndexOf(':');
        try {
            int port = Integer.parseInt(server.substring(colon + 1));
            if (colon > 0 && port > 0 && port < 65536) {
                return server;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("--server must be HOST:PORT, got '" + server + "'");
    }
}
