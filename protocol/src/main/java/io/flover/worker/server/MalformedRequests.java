package io.flover.worker.server;

import io.grpc.BindableService;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * A request whose bytes are not the message its method takes ends with INVALID_ARGUMENT saying so. Left to itself,
 * gRPC parses requests where nothing can catch the failure and answers UNKNOWN "Application error processing
 * RPC"; here requests reach the service as bytes and are parsed inside a listener that can.
 */
public final class MalformedRequests {
    /** Messages as their raw bytes: what the guarded service sees, and what a test sends to play a broken client. */
    public static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private MalformedRequests() {
    }

    public static ServerServiceDefinition guard(BindableService service) {
        ServerServiceDefinition raw = ServerInterceptors.useMarshalledMessages(service.bindService(), BYTES);
        return ServerInterceptors.intercept(raw, new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                              ServerCallHandler<Q, R> next) {
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(call, headers)) {
                    private boolean refused;

                    @Override
                    public void onMessage(Q message) {
                        if (refused) {
                            return;
                        }
                        try {
                            super.onMessage(message);
                        } catch (StatusRuntimeException e) {
                            refused = true;
                            call.close(Status.INVALID_ARGUMENT.withDescription("the request is not a valid message for "
                                    + call.getMethodDescriptor().getFullMethodName() + ": "
                                    + e.getStatus().getDescription()), new Metadata());
                        }
                    }

                    @Override
                    public void onHalfClose() {
                        if (!refused) {
                            super.onHalfClose();
                        }
                    }
                };
            }
        });
    }
}
