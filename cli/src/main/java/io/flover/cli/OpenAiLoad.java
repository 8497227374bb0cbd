package io.flover.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Flow;

/**
 * {@code bench serve --api openai}: the workload as streaming {@code /v1/completions} calls with token-id prompts,
 * greedy like the gRPC workload, each streamed chunk's {@code token_ids} (vLLM's {@code return_token_ids}) counted
 * as it arrives.
 */
final class OpenAiLoad implements LoadGenerator.Api {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * What {@code GET /v1/models} says of the served model: {@code vocab_size} and {@code max_model_len} are
     * Flover's (and vLLM's) extensions, {@code meta.n_vocab} and {@code meta.n_ctx_train} llama.cpp server's.
     */
    record Model(String name, int contextLength, int vocabSize) {
    }

    private final HttpClient http;
    private final URI completions;
    private final boolean ignoreEos;
    private final List<String> bodies = new ArrayList<>();

    /** {@code server} is HOST:PORT of the HTTP API. */
    OpenAiLoad(String server, boolean ignoreEos) {
        // HTTP/1.1, as OpenAI clients speak it: a connection per stream in flight.
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
        this.completions = URI.create("http://" + server + "/v1/completions");
        this.ignoreEos = ignoreEos;
    }

    Model model() throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(completions.resolve("/v1/models"))
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IllegalStateException("GET /v1/models answered " + r.statusCode() + ": " + r.body());
        }
        JsonNode m = JSON.readTree(r.body()).path("data").path(0);
        JsonNode vocab = m.has("vocab_size") ? m.path("vocab_size") : m.path("meta").path("n_vocab");
        if (!vocab.canConvertToInt() || vocab.asInt() <= 0) {
            throw new IllegalStateException("the server's /v1/models gives neither vocab_size nor meta.n_vocab");
        }
        JsonNode context = m.has("max_model_len") ? m.path("max_model_len") : m.path("meta").path("n_ctx_train");
        return new Model(m.path("id").asText(), context.asInt(), vocab.asInt());
    }

    /** Builds every request's body before the clock starts. */
    void prepare(Workload workload) {
        for (Workload.Request r : workload.requests()) {
            bodies.add(body(r.prompt(), r.maxTokens(), true));
        }
    }

    private String body(int[] prompt, int maxTokens, boolean stream) {
        ObjectNode b = JSON.createObjectNode();
        b.set("prompt", JSON.valueToTree(prompt));
        b.put("max_tokens", maxTokens);
        b.put("temperature", 0);
        b.put("ignore_eos", ignoreEos);
        b.put("stream", stream);
        b.put("return_token_ids", true);
        return b.toString();
    }

    @Override
    public void send(int index, LoadGenerator.Trace trace) {
        HttpRequest request = HttpRequest.newBuilder(completions).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(bodies.get(index))).build();
        http.sendAsync(request, info -> info.statusCode() == 200
                        ? HttpResponse.BodySubscribers.fromLineSubscriber(new Events(trace))
                        : HttpResponse.BodySubscribers.replacing(null))
                .whenComplete((response, error) -> {
                    if (error != null) {
                        trace.fail(error.getClass().getSimpleName());
                        trace.finish();
                    } else if (response.statusCode() != 200) {
                        trace.fail("HTTP " + response.statusCode());
                        trace.finish();
                    }
                });
    }

    @Override
    public void warmUp(Workload.Request first, int times) throws IOException, InterruptedException {
        String body = body(first.prompt(), Math.min(2, first.maxTokens()), false);
        for (int i = 0; i < times; i++) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(completions)
                    .header("Content-Type", "application/json").timeout(Duration.ofMinutes(5))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200) {
                throw new IllegalStateException("the server failed a warm-up request: " + r.body());
            }
        }
    }

    /** One stream's Server-Sent Events, line by line: each chunk's ids are a delivery; [DONE] ends the request. */
    private static final class Events implements Flow.Subscriber<String> {
        private final LoadGenerator.Trace trace;
        private int counted;
        private boolean done;

        Events(LoadGenerator.Trace trace) {
            this.trace = trace;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            s.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(String line) {
            if (!line.startsWith("data: ")) {
                return;
            }
            String data = line.substring(6);
            if (data.equals("[DONE]")) {
                return;
            }
            try {
                JsonNode chunk = JSON.readTree(data);
                if (chunk.has("error")) {
                    trace.fail("error event: " + chunk.path("error").path("code").asText());
                    return;
                }
                JsonNode choice = chunk.path("choices").path(0);
                if (choice.has("token_ids")) {
                    trace.delivered(choice.path("token_ids").size());
                    return;
                }
                // A server without token ids (llama.cpp's) streams one token per chunk, but holds back a token
                // that ends inside a UTF-8 character: count the chunks, then settle with its final count.
                if (choice.path("finish_reason").isNull()) {
                    counted++;
                    trace.delivered(1);
                } else if (counted > 0 && chunk.path("usage").has("completion_tokens")) {
                    trace.delivered(chunk.path("usage").path("completion_tokens").asInt() - counted);
                }
            } catch (IOException e) {
                trace.fail("malformed event");
            }
        }

        @Override
        public void onError(Throwable t) {
            trace.fail(t.getClass().getSimpleName());
            end();
        }

        @Override
        public void onComplete() {
            end();
        }

        private void end() {
            if (!done) {
                done = true;
                trace.finish();
            }
        }
    }
}
