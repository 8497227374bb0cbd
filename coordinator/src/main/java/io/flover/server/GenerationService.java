package io.flover.server;

import io.flover.coordinator.FinishReason;
import io.flover.coordinator.GenerationListener;
import io.flover.coordinator.GenerationRequest;
import io.flover.coordinator.Replicas;
import io.flover.coordinator.RequestRules;
import io.flover.coordinator.Scheduler;
import io.flover.model.InvalidFieldException;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.proto.v1.Finished;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerateResult;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.ListModelsRequest;
import io.flover.proto.v1.ListModelsResponse;
import io.flover.proto.v1.ModelInfo;
import io.flover.proto.v1.Timings;
import io.flover.proto.v1.TokenDelta;
import io.flover.proto.v1.TokenLogprob;
import io.flover.proto.v1.Usage;
import io.flover.worker.SamplingParams;
import io.flover.worker.TokenLogprobs;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The client API, {@code flover.v1.Generation}, over a model's replicas: requests are validated and submitted, and each
 * step's output goes to the client as it comes. The output processor's thread writes to the client streams, so
 * nothing here blocks: a stream that the client does not read fills a {@link BoundedStream}, and a client that
 * reads nothing for the stall timeout with its buffer full loses its request (RESOURCE_EXHAUSTED). A client that
 * cancels or disconnects cancels its request, which frees its slot and KV blocks at the next step boundary.
 */
public final class GenerationService extends GenerationGrpc.GenerationImplBase {
    private static final Logger LOG = Logger.getLogger(GenerationService.class.getName());

    /**
     * Bytes gRPC queues for a stream before it says the client is not ready; the rest waits in the stream's
     * {@link BoundedStream}, which counts messages (a delta is a few bytes to a few hundred).
     */
    private static final int READY_BYTES = 4096;

    private final Replicas replicas;
    private final ModelInfo model;
    private final FloverServer.Streams streams;
    private final AtomicLong requests = new AtomicLong();

    /** {@code model} is what ListModels reports about the replicas' model. */
    public GenerationService(Replicas replicas, ModelInfo model, FloverServer.Streams streams) {
        this.replicas = replicas;
        this.model = model;
        this.streams = streams;
    }

    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateResponse> responses) {
        var observer = (ServerCallStreamObserver<GenerateResponse>) responses;
        Streaming call = new Streaming(observer, requestId(request), streams);
        observer.setOnReadyThreshold(READY_BYTES);
        observer.setOnReadyHandler(call.out::drain);
        start(request, observer, call);
    }

    @Override
    public void generateUnary(GenerateRequest request, StreamObserver<GenerateResult> responses) {
        var observer = (ServerCallStreamObserver<GenerateResult>) responses;
        start(request, observer, new Collecting(observer, requestId(request)));
    }

    @Override
    public void listModels(ListModelsRequest request, StreamObserver<ListModelsResponse> responses) {
        responses.onNext(ListModelsResponse.newBuilder().addModels(model).build());
        responses.onCompleted();
    }

    private String requestId(GenerateRequest request) {
        return request.getRequestId().isEmpty() ? "req-" + requests.incrementAndGet() : request.getRequestId();
    }

    private void start(GenerateRequest request, ServerCallStreamObserver<?> observer, Call<?> call) {
        Status refusal;
        try {
            // Set while the method runs, as gRPC requires; it fires only after the method has returned.
            observer.setOnCancelHandler(call::cancel);
            call.attach(replicas.submit(toRequest(request), call));
            return;
        } catch (IllegalArgumentException e) {
            refusal = Status.INVALID_ARGUMENT.withDescription(e.getMessage());
        } catch (Scheduler.QueueFullException e) {
            refusal = Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage());
        } catch (IllegalStateException e) {
            refusal = Status.UNAVAILABLE.withDescription(e.getMessage());
        }
        LOG.fine(() -> "refused " + call.requestId + ": " + refusal);
        replicas.metrics().rejected(refusal.getCode().name());
        observer.onError(refusal.asRuntimeException());
    }

    /** The scheduler's request for a client's, or InvalidFieldException naming the field that is wrong. */
    private GenerationRequest toRequest(GenerateRequest r) {
        int vocab = replicas.model().vocabSize();
        Tokenizer tokenizer = replicas.tokenizer();
        int[] prompt = switch (r.getPromptCase()) {
            case TEXT -> RequestRules.encode(r.getText(), tokenizer, true, "prompt.text");
            case TOKEN_IDS -> RequestRules.promptIds(unsigned(r.getTokenIds().getIdsList()), vocab, "prompt.token_ids");
            case PROMPT_NOT_SET -> throw new InvalidFieldException("prompt",
                    "prompt is missing: set prompt.text or prompt.token_ids");
        };
        // uint32 read unsigned; anything past int range is past every context length, which the scheduler reports.
        int maxTokens = RequestRules.maxTokens(Integer.toUnsignedLong(r.getMaxTokens()), "max_tokens");
        List<String> stop = RequestRules.stopStrings(r.getStopList(), tokenizer, "stop");
        Set<Integer> stopIds = RequestRules.stopTokenIds(unsigned(r.getStopTokenIdsList()), vocab, "stop_token_ids");
        int logprobs = r.hasLogprobs() ? (int) Math.min(Integer.toUnsignedLong(r.getLogprobs()), Integer.MAX_VALUE) : -1;
        int promptLogprobs = r.hasPromptLogprobs()
                ? (int) Math.min(Integer.toUnsignedLong(r.getPromptLogprobs()), Integer.MAX_VALUE) : -1;
        return new GenerationRequest(prompt, maxTokens, sampling(r.getSampling(), stopIds, r.getIgnoreEos(), logprobs,
                promptLogprobs), stop, stopIds, r.getIgnoreEos());
    }

    /** Unset fields take their neutral values; the shared rules reject the rest, naming the field. */
    private SamplingParams sampling(io.flover.proto.v1.SamplingParams s, Set<Integer> stopIds, boolean ignoreEos,
                                    int logprobs, int promptLogprobs) {
        // A top_k beyond int range keeps every token, as any top_k of at least the vocabulary does.
        int topK = (int) Math.min(Integer.toUnsignedLong(s.getTopK()), Integer.MAX_VALUE);
        long seed = s.hasSeed() ? s.getSeed() : ThreadLocalRandom.current().nextLong();
        return RequestRules.sampling(s.getTemperature(), topK, s.hasTopP() ? s.getTopP() : 1, s.getMinP(),
                s.hasRepetitionPenalty() ? s.getRepetitionPenalty() : 1, s.getPresencePenalty(),
                s.getFrequencyPenalty(), Integer.toUnsignedLong(s.getMinTokens()), stopIds, ignoreEos, logprobs,
                promptLogprobs, replicas.model(), seed);
    }

    /** uint32 ids read unsigned, so 2^32-1 is not -1. */
    private static long[] unsigned(List<Integer> ids) {
        return ids.stream().mapToLong(Integer::toUnsignedLong).toArray();
    }

    /** Log-probabilities as the API sends them; a prompt's first token, which has none, is left out. */
    private static List<TokenLogprob> toProto(TokenLogprobs[] logprobs) {
        List<TokenLogprob> out = new ArrayList<>(logprobs.length);
        for (TokenLogprobs l : logprobs) {
            if (l == null) {
                continue;
            }
            TokenLogprob.Builder b = TokenLogprob.newBuilder().setLogprob(l.logprob());
            for (int k = 0; k < l.topIds().length; k++) {
                b.addTopIds(l.topIds()[k]).addTopLogprobs(l.topLogprobs()[k]);
            }
            out.add(b.build());
        }
        return out;
    }

    private static Finished finished(GenerationListener.Outcome o, String requestId) {
        Finished.Builder f = Finished.newBuilder()
                .setReason(toProto(o.reason()))
                .setUsage(Usage.newBuilder().setPromptTokens(o.promptTokens()).setCompletionTokens(o.completionTokens()))
                .setTimings(Timings.newBuilder().setQueueSeconds(o.queueSeconds())
                        .setTimeToFirstTokenSeconds(o.timeToFirstTokenSeconds()).setTotalSeconds(o.totalSeconds()))
                .setRequestId(requestId);
        if (o.error() != null) {
            f.setError(o.error());
        }
        return f.build();
    }

    private static io.flover.proto.v1.FinishReason toProto(FinishReason reason) {
        return switch (reason) {
            case STOP -> io.flover.proto.v1.FinishReason.FINISH_REASON_STOP;
            case LENGTH -> io.flover.proto.v1.FinishReason.FINISH_REASON_LENGTH;
            case CANCELLED -> io.flover.proto.v1.FinishReason.FINISH_REASON_CANCELLED;
            case ERROR, UNAVAILABLE -> io.flover.proto.v1.FinishReason.FINISH_REASON_ERROR;
        };
    }

    /**
     * One call as the scheduler sees it. Its callbacks run on the scheduler thread and write to the client only
     * while the call is alive; once the client is gone (or a write fails) the request is cancelled.
     */
    private abstract static class Call<T> implements GenerationListener {
        final ServerCallStreamObserver<T> observer;
        final String requestId;
        private volatile Scheduler.Handle handle;
        private volatile boolean gone;

        Call(ServerCallStreamObserver<T> observer, String requestId) {
            this.observer = observer;
            this.requestId = requestId;
        }

        /** Takes the request's handle; the scheduler may have called back (even failed a write) before this. */
        final void attach(Scheduler.Handle h) {
            handle = h;
            if (gone) {
                h.cancel();
            }
        }

        final void cancel() {
            gone = true;
            Scheduler.Handle h = handle;
            if (h != null) {
                h.cancel();
            }
        }

        /** A request no worker group is left to finish ends with the UNAVAILABLE status, which clients retry on. */
        final boolean endedUnavailable(Outcome outcome) {
            if (outcome.reason() != FinishReason.UNAVAILABLE) {
                return false;
            }
            send(o -> o.onError(Status.UNAVAILABLE.withDescription(outcome.error()).asRuntimeException()));
            return true;
        }

        final void send(Consumer<ServerCallStreamObserver<T>> write) {
            if (gone || observer.isCancelled()) {
                return;
            }
            try {
                write.accept(observer);
            } catch (RuntimeException e) {
                LOG.log(Level.FINE, "writing to the client of " + requestId + " failed; cancelling it", e);
                cancel();
            }
        }
    }

    /** Generate: a delta per step, then Finished; what the client has not read yet waits in {@link #out}. */
    private static final class Streaming extends Call<GenerateResponse> {
        final BoundedStream<GenerateResponse> out;

        Streaming(ServerCallStreamObserver<GenerateResponse> observer, String requestId, FloverServer.Streams streams) {
            super(observer, requestId);
            BoundedStream.Transport<GenerateResponse> transport = new BoundedStream.Transport<>() {
                @Override
                public boolean ready() {
                    return observer.isReady();
                }

                @Override
                public void write(GenerateResponse message) {
                    send(o -> o.onNext(message));
                }
            };
            out = new BoundedStream<>(transport, streams.buffered(), streams.stallTimeout(), Streaming::merge, () -> {
                LOG.info(() -> "cancelling " + requestId + ": its client read nothing for " + streams.stallTimeout());
                send(o -> o.onError(Status.RESOURCE_EXHAUSTED.withDescription("the client read nothing for "
                        + streams.stallTimeout().toSeconds() + " s while " + streams.buffered()
                        + " messages waited; the request was cancelled").asRuntimeException()));
                cancel();
            });
        }

        /** Two deltas as one: what a client that reads late receives. */
        private static GenerateResponse merge(GenerateResponse a, GenerateResponse b) {
            TokenDelta.Builder delta = a.getDelta().toBuilder().addAllTokenIds(b.getDelta().getTokenIdsList())
                    .addAllLogprobs(b.getDelta().getLogprobsList())
                    .addAllPromptLogprobs(b.getDelta().getPromptLogprobsList())
                    .setText(a.getDelta().getText() + b.getDelta().getText());
            return GenerateResponse.newBuilder().setDelta(delta).build();
        }

        @Override
        public void onPromptLogprobs(TokenLogprobs[] logprobs) {
            out.send(GenerateResponse.newBuilder().setDelta(TokenDelta.newBuilder()
                    .addAllPromptLogprobs(toProto(logprobs))).build());
        }

        @Override
        public void onTokens(int[] ids, String text, TokenLogprobs[] logprobs) {
            if (ids.length == 0 && text.isEmpty()) {
                return;
            }
            TokenDelta.Builder delta = TokenDelta.newBuilder().setText(text);
            for (int id : ids) {
                delta.addTokenIds(id);
            }
            if (logprobs != null) {
                delta.addAllLogprobs(toProto(logprobs));
            }
            out.send(GenerateResponse.newBuilder().setDelta(delta).build());
        }

        @Override
        public void onFinished(Outcome outcome) {
            out.end(() -> {
                if (endedUnavailable(outcome)) {
                    return;
                }
                GenerateResponse message = GenerateResponse.newBuilder().setFinished(finished(outcome, requestId)).build();
                send(o -> {
                    o.onNext(message);
                    o.onCompleted();
                });
            });
        }
    }

    /** GenerateUnary: collects the output and answers once. */
    private static final class Collecting extends Call<GenerateResult> {
        private final List<Integer> ids = new ArrayList<>();
        private final List<TokenLogprob> logprobs = new ArrayList<>();
        private final List<TokenLogprob> promptLogprobs = new ArrayList<>();
        private final StringBuilder text = new StringBuilder();

        Collecting(ServerCallStreamObserver<GenerateResult> observer, String requestId) {
            super(observer, requestId);
        }

        @Override
        public void onPromptLogprobs(TokenLogprobs[] logprobs) {
            promptLogprobs.addAll(toProto(logprobs));
        }

        @Override
        public void onTokens(int[] tokens, String delta, TokenLogprobs[] logprobs) {
            for (int id : tokens) {
                ids.add(id);
            }
            if (logprobs != null) {
                this.logprobs.addAll(toProto(logprobs));
            }
            text.append(delta);
        }

        @Override
        public void onFinished(Outcome outcome) {
            if (endedUnavailable(outcome)) {
                return;
            }
            GenerateResult result = GenerateResult.newBuilder().addAllTokenIds(ids).setText(text.toString())
                    .addAllLogprobs(logprobs).addAllPromptLogprobs(promptLogprobs)
                    .setFinished(finished(outcome, requestId)).build();
            send(o -> {
                o.onNext(result);
                o.onCompleted();
            });
        }
    }
}
