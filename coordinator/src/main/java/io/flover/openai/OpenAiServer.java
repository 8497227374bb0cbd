package io.flover.openai;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flover.coordinator.Replicas;
import io.flover.coordinator.RequestRules;
import io.flover.coordinator.Scheduler;
import io.flover.model.InvalidFieldException;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.server.BearerTokens;
import io.flover.server.FloverServer;
import io.flover.worker.server.Tls;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.QueuedThreadPool;

/**
 * The OpenAI-compatible HTTP API over the same replicas as the gRPC API: {@code /v1/completions},
 * {@code /v1/chat/completions}, {@code /v1/models}, vLLM's {@code /tokenize} and {@code /detokenize},
 * {@code /health} and, when the process keeps Prometheus metrics, {@code /metrics}. Served by Jetty's core
 * server, whose writes are asynchronous: the scheduler's output goes to each client without a thread waiting on it.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(OpenAiServer.class.getName());
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Jetty's start and stop lines are noise beside Flover's own; its warnings still show. Held, so it stays set. */
    private static final Logger JETTY = Logger.getLogger("org.eclipse.jetty");
    /** The socket buffer of each connection's output: what the kernel holds for a client that does not read. */
    private static final int SOCKET_SEND_BUFFER_BYTES = 64 << 10;
    /** The most of a too large body read and dropped before the 413, so that the client gets to read it. */
    private static final long DRAINED_BYTES = 4L * FloverServer.MAX_REQUEST_BYTES;

    static {
        JETTY.setLevel(Level.WARNING);
    }

    /**
     * What the API serves.
     *
     * @param model the served model's name, which requests must name, and what turns text into its ids
     * @param tokens the bearer tokens of {@code --auth-tokens}, or null for none
     * @param ready whether {@code /health} says 200
     * @param metrics the Prometheus text of the process's meters, or null when it keeps none
     * @param streams how much a stream holds for a client that does not read, and for how long: the gRPC API's
     */
    public record Api(Replicas replicas, String model, ChatTemplate template, BearerTokens tokens,
                      BooleanSupplier ready, Supplier<String> metrics, FloverServer.Streams streams) {
    }

    private final Api api;
    private final CompletionRequest.Model model;
    private final Server server;
    private final ServerConnector connector;

    private OpenAiServer(Api api, Server server, ServerConnector connector) {
        this.api = api;
        this.model = new CompletionRequest.Model(api.model(), api.replicas().model(), api.replicas().tokenizer(),
                Optional.ofNullable(api.template()));
        this.server = server;
        this.connector = connector;
    }

    /** Serves {@code api} at {@code address}: HTTPS with {@code tls}'s certificate and key, or plain HTTP with none. */
    public static OpenAiServer start(InetSocketAddress address, Tls tls, Api api) throws IOException {
        QueuedThreadPool threads = new QueuedThreadPool();
        threads.setName("flover-http");
        threads.setDaemon(true);
        Server server = new Server(threads);
        ServerConnector connector = tls.cert() == null ? new ServerConnector(server)
                : new ServerConnector(server, Https.contextFactory(tls));
        // Without a bound TCP's autotuning lets a socket hold up to tcp_wmem's maximum (4 MiB on Linux), which it
        // does over loopback's 64 KiB segments; token streams and answers need far less.
        connector.setAcceptedSendBufferSize(SOCKET_SEND_BUFFER_BYTES);
        // A write that makes no progress for the stall timeout fails, as a stream that stays full that long does.
        connector.setIdleTimeout(api.streams().stallTimeout().toMillis());
        connector.setHost(address.getHostString());
        connector.setPort(address.getPort());
        server.addConnector(connector);
        OpenAiServer s = new OpenAiServer(api, server, connector);
        server.setHandler(s.new Routes());
        try {
            server.start();
        } catch (Exception e) {
            try {
                server.stop();
            } catch (Exception suppressed) {
                e.addSuppressed(suppressed);
            }
            throw new IOException("cannot serve HTTP on " + address.getHostString() + ":" + address.getPort() + ": "
                    + e.getMessage(), e);
        }
        return s;
    }

    public int port() {
        return connector.getLocalPort();
    }

    @Override
    public void close() {
        try {
            server.stop();
        } catch (Exception e) {
            LOG.log(Level.WARNING, "stopping the HTTP server failed", e);
        }
    }

    private final class Routes extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) {
            String path = Request.getPathInContext(request);
            String method = request.getMethod();
            try {
                if (path.equals("/health")) {
                    if (!api.ready().getAsBoolean()) {
                        throw ApiError.unavailable("the server is not ready: loading, waiting for workers or draining");
                    }
                    writeJson(response, callback, 200, JSON.createObjectNode());
                    return true;
                }
                if (path.equals("/metrics") && api.metrics() != null) {
                    response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
                    response.write(true, ByteBuffer.wrap(api.metrics().get().getBytes(StandardCharsets.UTF_8)), callback);
                    return true;
                }
                authenticate(request);
                switch (method + " " + path) {
                    case "GET /v1/models" -> writeJson(response, callback, 200, models());
                    case "POST /v1/completions" -> generate(CompletionRequest.completion(body(request), model),
                            request, response, callback);
                    case "POST /v1/chat/completions" -> generate(CompletionRequest.chat(body(request), model),
                            request, response, callback);
                    case "POST /tokenize" -> writeJson(response, callback, 200, tokenize(body(request)));
                    case "POST /detokenize" -> writeJson(response, callback, 200, detokenize(body(request)));
                    default -> throw ApiError.notFound(null, "not_found", "no route " + method + " " + path);
                }
            } catch (ApiError e) {
                refuse(response, callback, e);
            } catch (InvalidFieldException e) {
                refuse(response, callback, ApiError.invalid(e.field(), e.getMessage()));
            } catch (Scheduler.QueueFullException e) {
                refuse(response, callback, ApiError.queueFull(e.getMessage()));
            } catch (IllegalStateException e) {
                refuse(response, callback, ApiError.unavailable(e.getMessage()));
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "HTTP " + method + " " + path + " failed", e);
                refuse(response, callback, ApiError.internal(e.toString()));
            }
            return true;
        }

        private void refuse(Response response, Callback callback, ApiError e) {
            api.replicas().metrics().rejected(e.statusName());
            writeError(response, callback, e);
        }

        private void authenticate(Request request) {
            if (api.tokens() != null) {
                String refusal = api.tokens().refusal(request.getHeaders().get(HttpHeader.AUTHORIZATION));
                if (refusal != null) {
                    throw ApiError.unauthorized(refusal);
                }
            }
        }

        private void generate(CompletionRequest r, Request request, Response response, Callback callback)
                throws Scheduler.QueueFullException {
            Completion c = new Completion(r, api.model(), api.replicas().tokenizer(), response, callback);
            c.start(api.replicas(), api.streams(), request);
            request.addFailureListener(failure -> c.cancel());
            // A client waiting for its answer is not idle; one that leaves is noticed by the completion's watch.
            request.addIdleTimeoutListener(timeout -> false);
        }

        /** The body as JSON, refused with 413 past the limit whether or not its length was announced. */
        private JsonNode body(Request request) {
            long limit = FloverServer.MAX_REQUEST_BYTES;
            byte[] bytes;
            try (InputStream in = Content.Source.asInputStream(request)) {
                if (request.getLength() > limit) {
                    throw tooLarge(in, limit);
                }
                bytes = in.readNBytes((int) limit + 1);
                if (bytes.length > limit) {
                    throw tooLarge(in, limit);
                }
            } catch (IOException e) {
                throw ApiError.invalid(null, "the request body could not be read: " + e.getMessage());
            }
            try {
                return JSON.readTree(bytes);
            } catch (JacksonException e) {
                throw ApiError.invalid(null, "the request body is not valid JSON: " + e.getOriginalMessage());
            } catch (IOException e) {
                throw ApiError.invalid(null, "the request body could not be read: " + e.getMessage());
            }
        }
    }

    /**
     * The 413 for a body past {@code limit}, once up to {@link #DRAINED_BYTES} more of it are read and dropped: a
     * client still sending when the connection closes sees a broken pipe instead of the answer.
     */
    private static ApiError tooLarge(InputStream body, long limit) throws IOException {
        long left = DRAINED_BYTES;
        while (left > 0) {
            long skipped = body.skip(left);
            if (skipped > 0) {
                left -= skipped;
            } else if (body.read() < 0) {
                break;
            } else {
                left--;
            }
        }
        return ApiError.tooLarge(limit);
    }

    private ObjectNode models() {
        ObjectNode list = JSON.createObjectNode();
        list.put("object", "list");
        ObjectNode m = list.putArray("data").addObject();
        m.put("id", api.model());
        m.put("object", "model");
        m.put("created", 0);
        m.put("owned_by", "flover");
        m.put("max_model_len", api.replicas().model().maxPositions());
        m.put("vocab_size", api.replicas().model().vocabSize()); // Flover's: bench serve draws prompt ids below it
        return list;
    }

    /** vLLM's {@code /tokenize}: the ids of {@code prompt}, or of {@code messages} rendered by the chat template. */
    private ObjectNode tokenize(JsonNode body) {
        Fields f = new Fields(body, "");
        f.string("model");
        Tokenizer tokenizer = requireTokenizer();
        int[] ids;
        if (f.has("messages")) {
            ids = CompletionRequest.chatPromptIds(f, model);
        } else {
            String prompt = f.string("prompt");
            if (prompt == null) {
                throw ApiError.invalid("prompt", "prompt or messages is required");
            }
            ids = tokenizer.encode(prompt, f.bool("add_special_tokens", true));
        }
        f.rejectUnknown();
        ObjectNode out = JSON.createObjectNode();
        out.put("count", ids.length);
        out.put("max_model_len", api.replicas().model().maxPositions());
        out.set("tokens", JSON.valueToTree(ids));
        return out;
    }

    /** vLLM's {@code /detokenize}: the text of {@code tokens}. */
    private ObjectNode detokenize(JsonNode body) {
        Fields f = new Fields(body, "");
        f.string("model");
        Tokenizer tokenizer = requireTokenizer();
        int[] ids = RequestRules.tokenIds(f.integers("tokens"), api.replicas().model().vocabSize(), "tokens");
        f.rejectUnknown();
        ObjectNode out = JSON.createObjectNode();
        out.put("prompt", tokenizer.decode(ids, false));
        return out;
    }

    private Tokenizer requireTokenizer() {
        Tokenizer t = api.replicas().tokenizer();
        if (t == null) {
            throw ApiError.invalid(null, "this model has no tokenizer");
        }
        return t;
    }

    static void writeJson(Response response, Callback callback, int status, JsonNode body) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
        response.write(true, ByteBuffer.wrap(body.toString().getBytes(StandardCharsets.UTF_8)), callback);
    }

    static void writeError(Response response, Callback callback, ApiError e) {
        if (e.status == 401) {
            response.getHeaders().put(HttpHeader.WWW_AUTHENTICATE, "Bearer");
        }
        writeJson(response, callback, e.status, e.body());
    }
}
