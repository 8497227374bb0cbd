package io.flover.server;

import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.List;

/**
 * Bearer-token authentication of the client API: a call must carry {@code authorization: Bearer TOKEN} with one
 * of the tokens of a file (one per line, as a Kubernetes Secret is mounted), or it ends with UNAUTHENTICATED.
 * Tokens are compared in constant time, every one of them, so timing tells nothing of a token. The health service
 * stays open: probes carry no credentials. The HTTP API asks the same tokens ({@link #refusal}).
 */
public final class BearerTokens implements ServerInterceptor {
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final String BEARER = "Bearer ";

    private final List<byte[]> tokens;

    private BearerTokens(List<byte[]> tokens) {
        this.tokens = tokens;
    }

    /** The tokens of {@code file}: one per line; blank lines and lines starting with # are skipped. */
    public static BearerTokens load(Path file) throws IOException {
        List<byte[]> tokens = Files.readAllLines(file).stream().map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#")).map(t -> t.getBytes(StandardCharsets.UTF_8)).toList();
        if (tokens.isEmpty()) {
            throw new IllegalArgumentException("the token file " + file + " holds no token");
        }
        return new BearerTokens(tokens);
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                      ServerCallHandler<Q, R> next) {
        if (HealthGrpc.SERVICE_NAME.equals(call.getMethodDescriptor().getServiceName())) {
            return next.startCall(call, headers);
        }
        String refusal = refusal(headers.get(AUTHORIZATION));
        if (refusal == null) {
            return next.startCall(call, headers);
        }
        call.close(Status.UNAUTHENTICATED.withDescription(refusal), new Metadata());
        return new ServerCall.Listener<>() { };
    }

    /** Why a call with this {@code authorization} header is refused, or null when it may go on. */
    public String refusal(String header) {
        return header == null || !header.startsWith(BEARER) ? "a bearer token is required (authorization: Bearer TOKEN)"
                : !known(header.substring(BEARER.length()).strip()) ? "the bearer token is not valid" : null;
    }

    private boolean known(String token) {
        byte[] given = token.getBytes(StandardCharsets.UTF_8);
        boolean match = false;
        for (byte[] t : tokens) {
            match |= MessageDigest.isEqual(t, given);
        }
        return match;
    }
}
