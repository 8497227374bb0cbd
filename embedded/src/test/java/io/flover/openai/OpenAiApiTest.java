package io.flover.openai;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.OpenAIServiceException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionChoice;
import com.openai.models.completions.CompletionCreateParams;
import io.flover.coordinator.Policy;
import io.flover.coordinator.SchedulerConfig;
import io.flover.model.Architecture;
import io.flover.model.DType;
import io.flover.model.RandomCheckpoint;
import io.flover.proto.v1.GenerateRequest;
import io.flover.proto.v1.GenerateResponse;
import io.flover.proto.v1.GenerationGrpc;
import io.flover.proto.v1.TokenLogprob;
import io.flover.server.EmbeddedServer;
import io.flover.server.FloverServer;
import io.flover.server.ServerTesting;
import io.grpc.ManagedChannel;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The HTTP API with the official OpenAI Java SDK as its client, over a random-weight Llama with a chat template. */
class OpenAiApiTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @TempDir
    static Path dir;
    static FloverServer server;
    static String base;
    static OpenAIClient client;
    static String model;

    @BeforeAll
    static void start() throws Exception {
        Path textModel = dir.resolve("tiny-chat");
        RandomCheckpoint.write(textModel, Architecture.LLAMA, RandomCheckpoint.Preset.TINY, DType.F32, 7, s -> { });
        server = ServerTesting.start(textModel);
        int port = server.serveHttp(new InetSocketAddress("127.0.0.1", 0), ChatTemplate.load(textModel, null).orElseThrow());
        base = "http://127.0.0.1:" + port;
        model = "tiny-chat";
        client = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey("unused").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    static CompletionCreateParams.Builder greedy(String prompt, long maxTokens) {
        return CompletionCreateParams.builder().model(model).prompt(prompt).maxTokens(maxTokens).temperature(0)
                .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true));
    }

    static ChatCompletionCreateParams.Builder chat(String user, long maxTokens) {
        return ChatCompletionCreateParams.builder().model(model).addSystemMessage("Be brief.").addUserMessage(user)
                .maxCompletionTokens(maxTokens).temperature(0)
                .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true));
    }

    @Test
    void completionStreamedAndNotAgreeWithUsage() throws Exception {
        Completion whole = client.completions().create(greedy("Once upon a time", 12).build());
        CompletionChoice choice = whole.choices().getFirst();
        assertEquals(CompletionChoice.FinishReason.LENGTH, choice.finishReason());
        int promptTokens = tokenize(JSON.createObjectNode().put("prompt", "Once upon a time")).get("count").asInt();
        assertEquals(promptTokens, whole.usage().orElseThrow().promptTokens());
        assertEquals(12, whole.usage().orElseThrow().completionTokens());
        assertEquals(promptTokens + 12, whole.usage().orElseThrow().totalTokens());

        StringBuilder text = new StringBuilder();
        List<Completion> chunks;
        try (StreamResponse<Completion> s = client.completions().createStreaming(greedy("Once upon a time", 12)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            chunks = s.stream().toList();
        }
        chunks.forEach(c -> c.choices().forEach(ch -> text.append(ch.text())));
        assertEquals(choice.text(), text.toString());
        Completion last = chunks.getLast();
        assertTrue(last.choices().isEmpty(), "the usage chunk has no choices");
        assertEquals(whole.usage(), last.usage());
        assertEquals(CompletionChoice.FinishReason.LENGTH, chunks.get(chunks.size() - 2).choices().getFirst().finishReason());
    }

    @Test
    void chatStreamedAndNotAgree() {
        ChatCompletion whole = client.chat().completions().create(chat("Hello there", 10).build());
        String content = whole.choices().getFirst().message().content().orElseThrow();
        assertEquals(10, whole.usage().orElseThrow().completionTokens());
        int promptTokens = tokenize(JSON.createObjectNode().set("messages", JSON.valueToTree(List.of(
                java.util.Map.of("role", "system", "content", "Be brief."),
                java.util.Map.of("role", "user", "content", "Hello there"))))).get("count").asInt();
        assertEquals(promptTokens, whole.usage().orElseThrow().promptTokens());
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(chat("Hello there", 10).build())) {
            List<ChatCompletionChunk> chunks = s.stream().toList();
            assertEquals(ChatCompletionChunk.Choice.Delta.Role.ASSISTANT,
                    chunks.getFirst().choices().getFirst().delta().role().orElseThrow());
            String streamed = chunks.stream().flatMap(c -> c.choices().stream())
                    .map(c -> c.delta().content().orElse("")).collect(Collectors.joining());
            assertEquals(content, streamed);
            assertEquals(ChatCompletionChunk.Choice.FinishReason.LENGTH,
                    chunks.getLast().choices().getFirst().finishReason().orElseThrow());
        }
    }

    @Test
    void nChoicesAreIndependentSamplesThatReplayWithASeed() {
        CompletionCreateParams params = CompletionCreateParams.builder().model(model).prompt("The sea").maxTokens(8)
                .temperature(1).n(3).seed(42).build();
        List<String> first = client.completions().create(params).choices().stream().map(CompletionChoice::text).toList();
        Completion again = client.completions().create(params);
        assertEquals(List.of(0L, 1L, 2L), again.choices().stream().map(CompletionChoice::index).toList());
        assertEquals(first, again.choices().stream().map(CompletionChoice::text).toList());
        assertNotEquals(first.get(0), first.get(1));
        assertEquals(24, again.usage().orElseThrow().completionTokens());
    }

    @Test
    void stopStringEndsTheTextBeforeIt() {
        String text = client.completions().create(greedy("A long story", 24).build()).choices().getFirst().text();
        String stop = text.substring(text.length() / 2, text.length() / 2 + 3);
        CompletionChoice stopped = client.completions().create(greedy("A long story", 24).stop(stop).build())
                .choices().getFirst();
        assertEquals(CompletionChoice.FinishReason.STOP, stopped.finishReason());
        assertEquals(text.substring(0, text.indexOf(stop)), stopped.text());
    }

    @Test
    void minTokensKeepsAStopIdFromEndingTheOutputEarly() throws Exception {
        JsonNode free = completion("{\"prompt\": [5, 6, 7], \"max_tokens\": 8, \"temperature\": 0, \"ignore_eos\": true, "
                + "\"return_token_ids\": true}");
        int first = free.at("/choices/0/token_ids/0").asInt();
        String stopAtFirst = "{\"prompt\": [5, 6, 7], \"max_tokens\": 8, \"temperature\": 0, \"ignore_eos\": true, "
                + "\"return_token_ids\": true, \"stop_token_ids\": [" + first + "]";
        JsonNode stopped = completion(stopAtFirst + "}");
        assertEquals(1, stopped.at("/choices/0/token_ids").size());
        assertEquals("stop", stopped.at("/choices/0/finish_reason").asText());
        JsonNode held = completion(stopAtFirst + ", \"min_tokens\": 3}");
        JsonNode ids = held.at("/choices/0/token_ids");
        assertTrue(ids.size() >= 3, held.toString());
        for (int i = 0; i < 3; i++) {
            assertNotEquals(first, ids.get(i).asInt(), held.toString());
        }
    }

    @Test
    void outputPenaltiesChangeARepetitiveGreedyOutput() throws Exception {
        String body = "{\"prompt\": [9, 9, 9], \"max_tokens\": 32, \"temperature\": 0, \"ignore_eos\": true, "
                + "\"return_token_ids\": true";
        JsonNode plain = completion(body + "}").at("/choices/0/token_ids");
        assertTrue(plain.size() > new java.util.HashSet<>(JSON.convertValue(plain, List.class)).size(),
                "the greedy output repeats a token: " + plain);
        JsonNode penalised = completion(body + ", \"presence_penalty\": 2, \"frequency_penalty\": 2}")
                .at("/choices/0/token_ids");
        assertNotEquals(plain, penalised);
        assertError(400, "presence_penalty", () -> client.completions().create(greedy("x", 2).presencePenalty(2.5).build()));
        assertError(400, "min_tokens", () -> client.completions().create(greedy("x", 2)
                .putAdditionalBodyProperty("min_tokens", JsonValue.from(-1)).build()));
    }

    static JsonNode completion(String body) throws Exception {
        HttpResponse<String> r = post("/v1/completions", body);
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body());
    }

    @Test
    void sixtyFourConcurrentStreamingChatsEachGetWhatTheyGetAlone() throws Exception {
        List<String> alone = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            alone.add(client.chat().completions().create(chat("user " + i, 6).build()).choices().getFirst()
                    .message().content().orElseThrow());
        }
        ExecutorService pool = Executors.newFixedThreadPool(64);
        try {
            List<Future<String>> streams = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                int k = i % 4;
                streams.add(pool.submit(() -> {
                    try (StreamResponse<ChatCompletionChunk> s = client.chat().completions()
                            .createStreaming(chat("user " + k, 6).build())) {
                        return s.stream().flatMap(c -> c.choices().stream()).map(c -> c.delta().content().orElse(""))
                                .collect(Collectors.joining());
                    }
                }));
            }
            for (int i = 0; i < 64; i++) {
                assertEquals(alone.get(i % 4), streams.get(i).get(), "stream " + i);
            }
        } finally {
            pool.shutdownNow();
        }
        ServerTesting.assertPoolWhole(server.replicas());
    }

    @Test
    void errorsNameTheField() {
        assertError(404, "model", () -> client.completions().create(greedy("x", 2).model("gpt-4o").build()));
        assertError(400, "tools", () -> client.chat().completions().create(chat("x", 2)
                .putAdditionalBodyProperty("tools", JsonValue.from(List.of())).build()));
        assertError(400, "logit_bias", () -> client.completions().create(greedy("x", 2)
                .putAdditionalBodyProperty("logit_bias", JsonValue.from(java.util.Map.of("1", 5))).build()));
        assertError(400, "temperature", () -> client.completions().create(greedy("x", 2).temperature(3.5).build()));
        assertError(400, "n", () -> client.completions().create(greedy("x", 2).n(9).build()));
        assertError(400, "max_tokens", () -> client.completions().create(greedy("x", 1_000_000).build()));
        assertError(400, "prompt", () -> client.completions().create(greedy("x", 2)
                .promptOfArrayOfTokens(List.of(1L, 1_000_000L)).build()));
        assertError(400, "stop[0]", () -> client.completions().create(greedy("x", 2).stopOfStrings(List.of("")).build()));
        assertError(400, "stop_token_ids", () -> client.completions().create(greedy("x", 2)
                .putAdditionalBodyProperty("stop_token_ids", JsonValue.from(List.of(-1))).build()));
        assertError(400, "bogus", () -> client.completions().create(greedy("x", 2)
                .putAdditionalBodyProperty("bogus", JsonValue.from(1)).build()));
    }

    @Test
    void rawHttpErrors() throws Exception {
        String image = "{\"model\":\"tiny-chat\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                + "\"image_url\":{\"url\":\"x\"}}]}]}";
        assertRaw(400, "messages[0].content[0].type", post("/v1/chat/completions", image));
        assertRaw(400, "messages[0].role", post("/v1/chat/completions",
                "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}"));
        assertRaw(400, null, post("/v1/completions", "{not json"));
        assertRaw(404, null, post("/v1/embeddings", "{}"));
        assertRaw(413, null, post("/v1/completions", "{\"prompt\":\"" + "a".repeat(5 << 20) + "\"}"));
        HttpResponse<String> health = HTTP.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, health.statusCode());
        JsonNode models = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).build(),
                HttpResponse.BodyHandlers.ofString()).body());
        assertEquals(model, models.at("/data/0/id").asText());
        JsonNode text = JSON.readTree(post("/detokenize", "{\"tokens\":" + tokenize(JSON.createObjectNode()
                .put("prompt", "héllo wörld")).get("tokens") + "}").body());
        assertEquals("héllo wörld", text.get("prompt").asText());
    }

    @Test
    void aClientThatLeavesFreesItsSlotAndBlocks() throws Exception {
        String body = "{\"model\":\"tiny-chat\",\"prompt\":\"go\",\"max_tokens\":400,\"stream\":true,\"ignore_eos\":true}";
        HttpResponse<InputStream> r = HTTP.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
        InputStream in = r.body();
        in.read(new byte[64]); // the stream has begun
        assertTrue(server.replicas().stats().running() + server.replicas().stats().waiting() > 0);
        in.close();
        ServerTesting.assertIdleWithin(server.replicas(), 5_000);
    }

    @Test
    void aClientThatLeavesBeforeItsWholeAnswerIsWrittenFreesItsSlotAndBlocksAtOnce() throws Exception {
        int maxTokens = server.replicas().model().maxPositions() - 8;
        long generatedBefore = server.replicas().stats().generatedTokens();
        byte[] body = ("{\"model\":\"tiny-chat\",\"prompt\":\"go\",\"max_tokens\":" + maxTokens
                + ",\"ignore_eos\":true}").getBytes(StandardCharsets.UTF_8);
        URI uri = URI.create(base);
        try (Socket socket = new Socket(uri.getHost(), uri.getPort())) {
            socket.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().write(body);
            socket.getOutputStream().flush();
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (server.replicas().stats().generatedTokens() == generatedBefore && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(1, server.replicas().stats().running(), "the completion runs");
        } // the client leaves before the answer, which is written only once it is whole
        ServerTesting.assertIdleWithin(server.replicas(), 2_000);
        long generated = server.replicas().stats().generatedTokens() - generatedBefore;
        assertTrue(generated < maxTokens / 2, "the completion ran on for " + generated + " of " + maxTokens + " tokens");
    }

    @Test
    void greedyIdsEqualTheGrpcApisAndTheGoldenReference() throws Exception {
        for (String name : List.of("llama-tiny-f32", "gpt2-tiny-f32")) {
            try (FloverServer golden = ServerTesting.start(ServerTesting.golden(name))) {
                int port = golden.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
                ManagedChannel channel = ServerTesting.channel(golden);
                try {
                    for (ServerTesting.Golden g : ServerTesting.cases(name)) {
                        String body = JSON.createObjectNode().put("temperature", 0).put("ignore_eos", true)
                                .put("return_token_ids", true).put("max_tokens", g.greedy().length)
                                .set("prompt", JSON.valueToTree(g.prompt())).toString();
                        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                                + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                                HttpResponse.BodyHandlers.ofString());
                        assertEquals(200, r.statusCode(), r.body());
                        int[] http = JSON.treeToValue(JSON.readTree(r.body()).at("/choices/0/token_ids"), int[].class);
                        assertArrayEquals(g.greedy(), http, name);
                        int[] grpc = GenerationGrpc.newBlockingStub(channel)
                                .generateUnary(ServerTesting.ids(g.prompt(), g.greedy().length).build())
                                .getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
                        assertArrayEquals(grpc, http, name);
                    }
                } finally {
                    ServerTesting.close(channel);
                }
            }
        }
    }

    @Test
    void logprobsAreTheReferenceLogSoftmaxOnOneRankAndAcrossTwo() throws Exception {
        for (int tp : new int[] {1, 2}) {
            try (FloverServer golden = EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"),
                    "127.0.0.1", 0, 2, tp, 16 << 20, io.flover.coordinator.SchedulerConfig.defaults(
                    new io.flover.coordinator.Policy.Fusion())))) {
                int port = golden.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
                JsonNode reference = JSON.readTree(ServerTesting.golden("llama-tiny-f32").resolve("expected.json")
                        .toFile()).get("cases");
                for (JsonNode c : reference) {
                    double[] logits = JSON.convertValue(c.get("last_logits"), double[].class);
                    double max = Arrays.stream(logits).max().orElseThrow();
                    double lse = max + Math.log(Arrays.stream(logits).map(l -> Math.exp(l - max)).sum());
                    Integer[] order = new Integer[logits.length];
                    Arrays.setAll(order, i -> i);
                    Arrays.sort(order, (a, b) -> Double.compare(logits[b], logits[a]));
                    String body = "{\"prompt\": " + c.get("prompt_ids") + ", \"max_tokens\": 1, \"temperature\": 0, "
                            + "\"ignore_eos\": true, \"logprobs\": 5}";
                    HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                            + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                            HttpResponse.BodyHandlers.ofString());
                    assertEquals(200, r.statusCode(), r.body());
                    JsonNode lp = JSON.readTree(r.body()).at("/choices/0/logprobs");
                    int chosen = c.get("greedy_ids").get(0).asInt();
                    assertEquals("token_id:" + chosen, lp.at("/tokens/0").asText(), "tp " + tp);
                    assertEquals(logits[chosen] - lse, lp.at("/token_logprobs/0").asDouble(), 1e-4, "tp " + tp);
                    List<String> top = new ArrayList<>();
                    lp.at("/top_logprobs/0").fieldNames().forEachRemaining(top::add);
                    assertEquals(5, top.size());
                    for (int k = 0; k < 5; k++) {
                        assertEquals("token_id:" + order[k], top.get(k), "tp " + tp + " rank " + k);
                        assertEquals(logits[order[k]] - lse, lp.at("/top_logprobs/0").get(top.get(k)).asDouble(), 1e-4);
                    }
                    // The gRPC API reports the same numbers.
                    ManagedChannel channel = ServerTesting.channel(golden);
                    try {
                        io.flover.proto.v1.TokenLogprob g = GenerationGrpc.newBlockingStub(channel).generateUnary(
                                ServerTesting.ids(JSON.convertValue(c.get("prompt_ids"), int[].class), 1).setLogprobs(5)
                                        .build()).getLogprobs(0);
                        assertEquals(lp.at("/token_logprobs/0").floatValue(), g.getLogprob(), 1e-6);
                        assertEquals(order[0], g.getTopIds(0));
                        assertEquals(5, g.getTopLogprobsCount());
                    } finally {
                        ServerTesting.close(channel);
                    }
                }
            }
        }
    }

    /**
     * The prompt's log-probabilities through the gRPC API against a float64 reference
     * ({@code golden/prompt_logprobs.py}), on one rank and across two, each prompt prefilled whole or in chunks of 8
     * tokens, alone or fused with the other prompts and a decoding request: within 1e-4 of the reference, and the
     * same bits however the steps were cut and whatever shared them.
     */
    @Test
    void promptLogprobsAreTheReferenceWholeOrChunkedAloneOrFusedOnOneRankAndAcrossTwo() throws Exception {
        for (String name : List.of("llama-tiny-f32", "gpt2-tiny-f32")) {
            JsonNode cases = JSON.readTree(ServerTesting.golden(name).resolve("prompt_logprobs.json").toFile())
                    .get("cases");
            for (int tp : new int[] {1, 2}) {
                List<List<TokenLogprob>> whole = null;
                for (int chunk : new int[] {256, 8}) {
                    String where = name + " tp " + tp + " chunks of " + chunk;
                    SchedulerConfig config = new SchedulerConfig(new Policy.Fusion(), 4, chunk, 64);
                    try (FloverServer golden = EmbeddedServer.start(new EmbeddedServer.Options(
                            ServerTesting.golden(name), "127.0.0.1", 0, 2, tp, 16 << 20, config))) {
                        ManagedChannel channel = ServerTesting.channel(golden);
                        try {
                            var stub = GenerationGrpc.newBlockingStub(channel);
                            List<List<TokenLogprob>> alone = new ArrayList<>();
                            for (JsonNode c : cases) {
                                alone.add(stub.generateUnary(scoring(c)).getPromptLogprobsList());
                            }
                            // All at once beside a decoding request, streamed: the figures come in the first delta.
                            var decoding = stub.generate(ServerTesting.ids(new int[] {5, 6, 7}, 40).build());
                            List<java.util.Iterator<GenerateResponse>> streams = new ArrayList<>();
                            for (JsonNode c : cases) {
                                streams.add(stub.generate(scoring(c)));
                            }
                            for (int i = 0; i < cases.size(); i++) {
                                ServerTesting.Streamed fused = ServerTesting.Streamed.of(streams.get(i));
                                assertEquals(alone.get(i), fused.deltas().getFirst().getDelta().getPromptLogprobsList(),
                                        where + ": case " + i + " fused and alone");
                            }
                            ServerTesting.Streamed.of(decoding);
                            for (int i = 0; i < cases.size(); i++) {
                                assertReference(cases.get(i).get("tokens"), alone.get(i), where + " case " + i);
                            }
                            if (whole == null) {
                                whole = alone;
                            } else {
                                for (int i = 0; i < cases.size(); i++) {
                                    assertEquals(whole.get(i), alone.get(i), where + ": case " + i + " chunked and whole");
                                }
                            }
                        } finally {
                            ServerTesting.close(channel);
                        }
                    }
                }
            }
        }
    }

    /** A greedy request for one token that asks for its prompt's log-probabilities, with 5 top tokens each. */
    private static GenerateRequest scoring(JsonNode referenceCase) {
        return ServerTesting.ids(JSON.convertValue(referenceCase.get("prompt_ids"), int[].class), 1)
                .setPromptLogprobs(5).build();
    }

    private static void assertReference(JsonNode expected, List<TokenLogprob> actual, String where) {
        assertEquals(expected.size(), actual.size(), where + ": one per prompt token after the first");
        for (int i = 0; i < actual.size(); i++) {
            JsonNode e = expected.get(i);
            TokenLogprob a = actual.get(i);
            assertEquals(e.get("logprob").asDouble(), a.getLogprob(), 1e-4, where + " token " + (i + 1));
            assertEquals(JSON.convertValue(e.get("top_ids"), List.class), a.getTopIdsList(), where + " token " + (i + 1));
            for (int k = 0; k < a.getTopLogprobsCount(); k++) {
                assertEquals(e.get("top_logprobs").get(k).asDouble(), a.getTopLogprobs(k), 1e-4, where + " top " + k);
            }
        }
    }

    /**
     * echo with logprobs through the SDK: the prompt's tokens first (the first with none, as nothing precedes it)
     * spelling the prompt, then the completion's, with text offsets counting the tokens' characters; the same
     * streamed, the echoed prompt with its figures in one chunk; the same for each of n choices, and from a server
     * that prefills the prompt in chunks of 8 tokens; with max_tokens 0 the prompt alone.
     */
    @Test
    void echoWithLogprobsScoresThePromptThenTheCompletion() throws Exception {
        String prompt = "Once upon a time there was a tiny model that told long stories to everyone";
        int promptTokens = tokenize(JSON.createObjectNode().put("prompt", prompt)).get("count").asInt();
        assertTrue(promptTokens > 16, "the prompt spans several chunks of 8: " + promptTokens);
        Completion whole = client.completions().create(greedy(prompt, 4).echo(true).logprobs(3).n(2).build());
        assertEquals(2, whole.choices().size());
        CompletionChoice.Logprobs expected = whole.choices().getFirst().logprobs().orElseThrow();
        for (CompletionChoice c : whole.choices()) {
            CompletionChoice.Logprobs lp = c.logprobs().orElseThrow();
            assertEquals(expected.tokenLogprobs().orElseThrow(), lp.tokenLogprobs().orElseThrow(),
                    "each choice scores the same prompt the same");
            assertEquals(expected.tokens(), lp.tokens());
            List<String> tokens = lp.tokens().orElseThrow();
            List<Double> values = lp.tokenLogprobs().orElseThrow();
            var tops = lp.topLogprobs().orElseThrow();
            List<Long> offsets = lp.textOffset().orElseThrow();
            assertEquals(promptTokens + 4, tokens.size());
            assertTrue(c.text().startsWith(prompt), c.text());
            String spelled = String.join("", tokens.subList(0, promptTokens));
            assertTrue(spelled.equals(prompt) || spelled.equals(tokens.getFirst() + prompt), spelled);
            assertNull(values.getFirst(), "nothing precedes the first prompt token");
            assertNull(tops.getFirst());
            for (int i = 1; i < tokens.size(); i++) {
                var top = tops.get(i)._additionalProperties();
                assertEquals(3, top.size(), "token " + i);
                double best = top.values().stream().mapToDouble(v -> v.convert(Double.class)).max().orElseThrow();
                assertTrue(values.get(i) <= best + 1e-6 && best <= 0, "token " + i);
            }
            for (int i = promptTokens; i < tokens.size(); i++) {
                assertEquals(values.get(i), tops.get(i)._additionalProperties().get(tokens.get(i)).convert(Double.class),
                        1e-6, "a greedy token is its position's most likely");
            }
            for (int i = 0, at = 0; i < tokens.size(); at += tokens.get(i).length(), i++) {
                assertEquals(at, offsets.get(i), "text offset of token " + i);
            }
        }

        List<Completion> chunks;
        try (StreamResponse<Completion> s = client.completions().createStreaming(greedy(prompt, 4).echo(true)
                .logprobs(3).n(2).build())) {
            chunks = s.stream().toList();
        }
        for (long index = 0; index < 2; index++) {
            long i = index;
            List<CompletionChoice> mine = chunks.stream().flatMap(c -> c.choices().stream())
                    .filter(c -> c.index() == i && c.logprobs().isPresent()).toList();
            assertEquals(prompt, mine.getFirst().text(), "the echoed prompt comes first, with its figures");
            assertEquals(expected.tokens().orElseThrow().subList(0, promptTokens),
                    mine.getFirst().logprobs().orElseThrow().tokens().orElseThrow());
            assertEquals(expected.tokenLogprobs().orElseThrow(), mine.stream()
                    .flatMap(c -> c.logprobs().orElseThrow().tokenLogprobs().orElseThrow().stream()).toList(), "streamed");
            assertEquals(expected.textOffset().orElseThrow(), mine.stream()
                    .flatMap(c -> c.logprobs().orElseThrow().textOffset().orElseThrow().stream()).toList());
        }

        CompletionChoice scored = client.completions().create(greedy(prompt, 0).echo(true).logprobs(3).build())
                .choices().getFirst();
        assertEquals(prompt, scored.text());
        assertEquals(CompletionChoice.FinishReason.LENGTH, scored.finishReason());
        assertEquals(expected.tokenLogprobs().orElseThrow().subList(0, promptTokens),
                scored.logprobs().orElseThrow().tokenLogprobs().orElseThrow(), "max_tokens 0");
        assertError(400, "max_tokens", () -> client.completions().create(greedy(prompt, 0).build()));

        try (FloverServer chunked = ServerTesting.start(dir.resolve("tiny-chat"),
                new SchedulerConfig(new Policy.Fusion(), 4, 8, 64))) {
            int port = chunked.serveHttp(new InetSocketAddress("127.0.0.1", 0),
                    ChatTemplate.load(dir.resolve("tiny-chat"), null).orElseThrow());
            OpenAIClient other = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + port + "/v1")
                    .apiKey("unused").maxRetries(0).build();
            try {
                CompletionChoice.Logprobs inChunks = other.completions().create(greedy(prompt, 4).echo(true).logprobs(3)
                        .build()).choices().getFirst().logprobs().orElseThrow();
                assertEquals(expected.tokens(), inChunks.tokens());
                assertEquals(expected.tokenLogprobs().orElseThrow(), inChunks.tokenLogprobs().orElseThrow(),
                        "prefilled in chunks of 8 and whole");
            } finally {
                other.close();
            }
        }
    }

    @Test
    void chatLogprobsThroughTheSdk() {
        ChatCompletion reply = client.chat().completions().create(chat("Hi", 5).logprobs(true).topLogprobs(3).build());
        var content = reply.choices().getFirst().logprobs().orElseThrow().content().orElseThrow();
        assertEquals(5, content.size());
        for (var token : content) {
            assertEquals(3, token.topLogprobs().size());
            assertEquals(token.token(), token.topLogprobs().getFirst().token(), "greedy takes the most likely");
            assertEquals(token.logprob(), token.topLogprobs().getFirst().logprob(), 1e-6);
            assertTrue(token.topLogprobs().get(0).logprob() >= token.topLogprobs().get(1).logprob());
            assertTrue(token.logprob() <= 0);
        }
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(chat("Hi", 5)
                .logprobs(true).topLogprobs(3).build())) {
            long streamed = s.stream().flatMap(c -> c.choices().stream())
                    .flatMap(c -> c.logprobs().flatMap(ChatCompletionChunk.Choice.Logprobs::content).stream())
                    .mapToLong(List::size).sum();
            assertEquals(5, streamed);
        }
        assertError(400, "top_logprobs", () -> client.chat().completions().create(chat("x", 2).topLogprobs(2).build()));
        assertError(400, "logprobs", () -> client.completions().create(greedy("x", 2).logprobs(21).build()));
    }

    @Test
    void aModelWithoutATemplateRefusesChat() throws Exception {
        try (FloverServer golden = ServerTesting.start(ServerTesting.golden("llama-tiny-f32"))) {
            int port = golden.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                    + "/v1/chat/completions")).POST(HttpRequest.BodyPublishers.ofString(
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")).build(), HttpResponse.BodyHandlers.ofString());
            assertRaw(400, "messages", r);
            assertTrue(r.body().contains("no chat template"), r.body());
        }
    }

    @Test
    void bearerTokensGuardEverythingButHealth() throws Exception {
        Path tokens = java.nio.file.Files.writeString(dir.resolve("tokens"), "s3cret\n");
        FloverServer.Security security = new FloverServer.Security(io.flover.worker.server.Tls.NONE,
                io.flover.server.BearerTokens.load(tokens));
        try (FloverServer secured = EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"),
                "127.0.0.1", 0, 1, 1, 4 << 20, io.flover.coordinator.SchedulerConfig.defaults(
                new io.flover.coordinator.Policy.Fusion())), io.flover.coordinator.ServingMetrics.none(), security)) {
            String url = "http://127.0.0.1:" + secured.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
            assertRaw(401, null, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/v1/models")).build(),
                    HttpResponse.BodyHandlers.ofString()));
            assertRaw(401, null, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/v1/models"))
                    .header("Authorization", "Bearer wrong").build(), HttpResponse.BodyHandlers.ofString()));
            assertEquals(200, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/v1/models"))
                    .header("Authorization", "Bearer s3cret").build(), HttpResponse.BodyHandlers.ofString()).statusCode());
            assertEquals(200, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode());
            OpenAIClient sdk = OpenAIOkHttpClient.builder().baseUrl(url + "/v1").apiKey("s3cret").maxRetries(0).build();
            try {
                assertEquals(2, sdk.completions().create(CompletionCreateParams.builder().model("llama-tiny-f32")
                        .promptOfArrayOfTokens(List.of(1L, 2L)).maxTokens(2).temperature(0)
                        .putAdditionalBodyProperty("ignore_eos", JsonValue.from(true)).build())
                        .usage().orElseThrow().completionTokens());
            } finally {
                sdk.close();
            }
        }
    }

    @Test
    void withTlsTheHttpApiServesHttpsWithTheGrpcApisCertificateAndClientCa() throws Exception {
        FloverServer.Security security = new FloverServer.Security(new io.flover.worker.server.Tls(tls("server.pem"),
                tls("server.key"), tls("ca.pem")), null);
        try (FloverServer secured = EmbeddedServer.start(new EmbeddedServer.Options(ServerTesting.golden("llama-tiny-f32"),
                "127.0.0.1", 0, 1, 1, 4 << 20, io.flover.coordinator.SchedulerConfig.defaults(
                new io.flover.coordinator.Policy.Fusion())), io.flover.coordinator.ServingMetrics.none(), security)) {
            String url = "https://localhost:" + secured.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
            HttpRequest models = HttpRequest.newBuilder(URI.create(url + "/v1/models")).build();
            HttpClient identified = https(clientIdentity());
            assertEquals(200, identified.send(models, HttpResponse.BodyHandlers.ofString()).statusCode());
            // Two answers on one connection: the watch for clients that leave hands the connection back whole.
            HttpRequest completion = HttpRequest.newBuilder(URI.create(url + "/v1/completions")).POST(HttpRequest
                    .BodyPublishers.ofString("{\"prompt\": [1, 2], \"max_tokens\": 3, \"ignore_eos\": true}")).build();
            for (int i = 0; i < 2; i++) {
                HttpResponse<String> r = identified.send(completion, HttpResponse.BodyHandlers.ofString());
                assertEquals(200, r.statusCode(), r.body());
                assertEquals(3, JSON.readTree(r.body()).at("/usage/completion_tokens").asInt(), r.body());
            }
            // A client without a certificate from the CA, and a plaintext one, are refused.
            assertThrows(java.io.IOException.class, () -> https(null).send(models, HttpResponse.BodyHandlers.ofString()));
            assertThrows(java.io.IOException.class, () -> HTTP.send(HttpRequest.newBuilder(URI.create(
                    url.replace("https:", "http:") + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString()));
        }
    }

    private static Path tls(String file) throws Exception {
        return Path.of(OpenAiApiTest.class.getResource("/tls/" + file).toURI());
    }

    /** The test client certificate and its key, which the server's CA signed. */
    private static KeyManager[] clientIdentity() throws Exception {
        String pem = java.nio.file.Files.readString(tls("client.key"));
        byte[] der = java.util.Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z ]+-----", ""));
        KeyStore keys = KeyStore.getInstance("PKCS12");
        keys.load(null, null);
        try (InputStream in = java.nio.file.Files.newInputStream(tls("client.pem"))) {
            keys.setKeyEntry("client", KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(der)),
                    new char[0], new Certificate[] {CertificateFactory.getInstance("X.509").generateCertificate(in)});
        }
        KeyManagerFactory f = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        f.init(keys, new char[0]);
        return f.getKeyManagers();
    }

    /** An HTTP/1.1 client that trusts the test CA and presents {@code identity} (null: no certificate). */
    private static HttpClient https(KeyManager[] identity) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (InputStream in = java.nio.file.Files.newInputStream(tls("ca.pem"))) {
            trust.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory trusted = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trusted.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(identity, trusted.getTrustManagers(), null);
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).sslContext(context).build();
    }

    @Test
    void aDrainingServerIsUnhealthyAndRefusesWith503() throws Exception {
        try (FloverServer draining = ServerTesting.start(ServerTesting.golden("llama-tiny-f32"))) {
            String url = "http://127.0.0.1:" + draining.serveHttp(new InetSocketAddress("127.0.0.1", 0), null);
            assertEquals(200, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode());
            draining.setServing(false);
            draining.replicas().drain(java.time.Duration.ZERO);
            assertRaw(503, null, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/health")).build(),
                    HttpResponse.BodyHandlers.ofString()));
            assertRaw(503, null, HTTP.send(HttpRequest.newBuilder(URI.create(url + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": [1, 2]}")).build(),
                    HttpResponse.BodyHandlers.ofString()));
        }
    }

    static void assertError(int status, String param, Runnable call) {
        OpenAIServiceException e = assertThrows(OpenAIServiceException.class, call::run);
        assertEquals(status, e.statusCode(), e.getMessage());
        assertEquals(param, e.param().orElse(null), e.getMessage());
        assertFalse(e.getMessage().isEmpty());
    }

    static void assertRaw(int status, String param, HttpResponse<String> r) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        JsonNode error = JSON.readTree(r.body()).get("error");
        assertTrue(error.get("message").asText().length() > 0, r.body());
        assertEquals(param, error.get("param").isNull() ? null : error.get("param").asText(), r.body());
        assertTrue(error.has("type") && error.has("code"), r.body());
    }

    static HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(base + path)).POST(HttpRequest.BodyPublishers.ofString(body))
                .build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
    }

    static JsonNode tokenize(JsonNode body) {
        try {
            HttpResponse<String> r = post("/tokenize", body.toString());
            assertEquals(200, r.statusCode(), r.body());
            return JSON.readTree(r.body());
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }
}
