package io.flover.cli;

import io.flover.proto.v1.FinishReason;
import io.flover.proto.v1.Finished;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ListModelsRequest;
import io.flover.proto.v1.ListModelsResponse;
import io.flover.proto.v1.ModelInfo;
import io.flover.proto.v1.TokenDelta;
import io.flover.proto.v1.Usage;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.InetSocketAddress;

/**
 * The server of {@code bench serve --self-test}: it answers every request at once with max_tokens one-token
 * deltas and no model behind them, so what the load generator measures against it is its own cost and gRPC's.
 */
final class InstantGeneration extends GenerationGrpc.GenerationImplBase {
    static final ModelInfo MODEL = ModelInfo.newBuilder().setName("instant (self-test)").setArchitecture("none")
            .setContextLength(1 << 20).setDtype("F32").setVocabSize(32000).build();

    /** Listens on a free loopback port. */
    static Server start() throws IOException {
        return NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new InstantGeneration()).build().start();
    }

    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateResponse> responses) {
        int tokens = request.getMaxTokens() == 0 ? 16 : request.getMaxTokens();
        for (int i = 0; i < tokens; i++) {
            responses.onNext(GenerateResponse.newBuilder()
                    .setDelta(TokenDelta.newBuilder().addTokenIds(i % MODEL.getVocabSize())).build());
        }
        responses.onNext(GenerateResponse.newBuilder().setFinished(Finished.newBuilder()
                .setReason(FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setPromptTokens(request.getTokenIds().getIdsCount())
                        .setCompletionTokens(tokens))).build());
        responses.onCompleted();
    }

    @Override
    public void listModels(ListModelsRequest request, StreamObserver<ListModelsResponse> responses) {
        responses.onNext(ListModelsResponse.newBuilder().addModels(MODEL).build());
        responses.onCompleted();
    }
}
