package io.flover.openai;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.flover.coordinator.FinishReason;
import io.flover.coordinator.GenerationListener;
import io.flover.coordinator.Replicas;
import io.flover.coordinator.Scheduler;
import io.flover.model.tokenizer.Tokenizer;
import io.flover.server.BoundedStream;
import io.flover.server.FloverServer;
import io.flover.worker.TokenLogprobs;
import java.io.IOException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.NetworkChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Logger;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.EofException;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.util.Callback;

/**
 * One completion or chat completion in flight: its choices run as independent requests on the scheduler, and
 * their output is answered in one JSON body or streamed as Server-Sent Events. The scheduler calls back from
 * its own thread (several, with several replicas), so all state is guarded by this object's lock; nothing here
 * blocks for the client. A stream's events wait in a {@link BoundedStream}, as the gRPC API's messages do: a
 * client that reads nothing for the stall timeout with its buffer full loses its request and its connection.
 */
final class Completion {
    private static final Logger LOG = Logger.getLogger(Completion.class.getName());
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8);

    private final CompletionRequest request;
    private final String model;
    private final Tokenizer tokenizer;
    private final String id;
    private final long created = System.currentTimeMillis() / 1000;
    private final Response response;
    private final Callback callback;
    /** Notices a client that closes its connection, from the choices' submission to the answer's last write. */
    private volatile HangupWatch watch;
    /** Whether {@link #callback} was completed: the response's end, or its failure, happens once. */
    private final AtomicBoolean responded = new AtomicBoolean();
    private final Choice[] choices;
    /** The choices' requests; {@link #cancel} takes no lock, as a failed write may call it while holding the stream's. */
    private final List<Scheduler.Handle> handles = new CopyOnWriteArrayList<>();
    private final AtomicBoolean gone = new AtomicBoolean();
    private BoundedStream<byte[]> stream;
    private int unfinished;
    private boolean errorSent;

    /** One choice: its text so far (unless streamed) and how it ended. */
    private final class Choice implements GenerationListener {
        final int index;
        final StringBuilder text = new StringBuilder();
        final List<Integer> ids = new ArrayList<>();
        final List<TokenLogprobs> logprobs = new ArrayList<>();
        /** With echo and logprobs, the prompt's (the first null), until answered. */
        TokenLogprobs[] promptLogprobs;
        /** Where the next token's text starts among the tokens' texts so far: a completion's {@code text_offset}. */
        int textOffset;
        /** A high surrogate held back so no delta ends inside a character. */
        String held = "";
        Outcome outcome;

        Choice(int index) {
            this.index = index;
        }

        CompletionRequest.Prompt prompt() {
            return request.prompts().get(index / request.n());
        }

        /** With echo, the prompt comes first: streamed, its text with its log-probabilities. */
        @Override
        public void onPromptLogprobs(TokenLogprobs[] logprobs) {
            synchronized (Completion.this) {
                if (stream != null) {
                    ObjectNode chunk = chunk(index, prompt().text(), null, null);
                    ((ObjectNode) chunk.get("choices").get(0)).set("logprobs",
                            logprobs(this, prompt().ids(), logprobs));
                    stream.send(event(chunk.toString()));
                } else {
                    promptLogprobs = logprobs;
                }
            }
        }

        @Override
        public void onTokens(int[] ids, String delta, TokenLogprobs[] logprobs) {
            synchronized (Completion.this) {
                for (int id : ids) {
                    this.ids.add(id);
                }
                String out = held + delta;
                held = "";
                if (!out.isEmpty() && Character.isHighSurrogate(out.charAt(out.length() - 1))) {
                    held = out.substring(out.length() - 1);
                    out = out.substring(0, out.length() - 1);
                }
                int[] withIds = request.returnTokenIds() && ids.length > 0 ? ids : null;
                boolean withLogprobs = logprobs != null && ids.length > 0;
                if (stream != null && (!out.isEmpty() || withIds != null || withLogprobs)) {
                    ObjectNode chunk = chunk(index, out, null, withIds);
                    if (withLogprobs) {
                        ((ObjectNode) chunk.get("choices").get(0)).set("logprobs", logprobs(this, ids, logprobs));
                    }
                    stream.send(event(chunk.toString()));
                } else {
                    text.append(out);
                    if (withLogprobs) {
                        this.logprobs.addAll(List.of(logprobs));
                    }
                }
            }
        }

        @Override
        public void onFinished(Outcome o) {
            synchronized (Completion.this) {
                if (!held.isEmpty() && stream != null) {
                    stream.send(event(chunk(index, held, null, null).toString())); // a character the output never completed
                } else {
                    text.append(held);
                }
                outcome = o;
                unfinished--;
                if (stream != null) {
                    streamEnd(this);
                } else if (unfinished == 0) {
                    answer();
                }
            }
        }
    }

    Completion(CompletionRequest request, String model, Tokenizer tokenizer, Response response, Callback callback) {
        this.request = request;
        this.tokenizer = tokenizer;
        this.model = model;
        this.id = (request.chat() ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString().replace("-", "");
        this.response = response;
        this.callback = callback;
        this.choices = new Choice[request.choices().size()];
        for (int i = 0; i < choices.length; i++) {
            choices[i] = new Choice(i);
        }
    }

    /**
     * Submits every choice, or none: a refusal of any (queue full, draining) cancels those already queued and is
     * thrown before anything was written. Then a client that closes {@code http}'s connection (whose body was read)
     * cancels them.
     */
    synchronized void start(Replicas replicas, FloverServer.Streams streams, Request http)
            throws Scheduler.QueueFullException {
        unfinished = choices.length;
        try {
            for (int i = 0; i < choices.length; i++) {
                handles.add(replicas.submit(request.choices().get(i), choices[i]));
            }
        } catch (RuntimeException | Scheduler.QueueFullException e) {
            gone.set(true);
            handles.forEach(Scheduler.Handle::cancel);
            throw e;
        }
        watch = HangupWatch.start(http, this::cancel);
        if (request.stream()) {
            response.setStatus(200);
            response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/event-stream; charset=utf-8");
            response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-cache");
            EndPoint connection = http.getConnectionMetaData().getConnection().getEndPoint();
            stream = new BoundedStream<>(new Sse(connection), streams.buffered(), streams.stallTimeout(),
                    Completion::concat, () -> abandon(connection, new EofException("the client read nothing for "
                            + streams.stallTimeout().toSeconds() + " s while " + streams.buffered() + " events waited")));
            for (Choice c : choices) {
                // The role first, as OpenAI streams it; echo sends the prompt before any completion, with logprobs
                // once they are scored (onPromptLogprobs).
                if (request.chat()) {
                    stream.send(event(chunk(c.index, "", null, null).toString()));
                } else if (request.echo() && request.logprobs() < 0) {
                    stream.send(event(chunk(c.index, c.prompt().text(), null, null).toString()));
                }
            }
        }
    }

    /**
     * The response as a {@link BoundedStream}'s transport: ready while no write is in flight (Jetty takes one at a
     * time), and a write that completes lets the stream write what waits.
     */
    private final class Sse implements BoundedStream.Transport<byte[]> {
        private final EndPoint connection;
        private volatile boolean writing;

        Sse(EndPoint connection) {
            this.connection = connection;
        }

        @Override
        public boolean ready() {
            return !writing;
        }

        @Override
        public void write(byte[] events) {
            writing = true;
            response.write(false, ByteBuffer.wrap(events), Callback.from(() -> {
                writing = false;
                stream.drain();
            }, why -> abandon(connection, why))); // the client left, or read nothing for the idle timeout
        }
    }

    /**
     * A stream whose client left or reads nothing: its choices are cancelled and its connection reset, which ends
     * a write that waits on the client and drops what the socket still holds for it.
     */
    private void abandon(EndPoint connection, Throwable why) {
        LOG.fine(() -> "cancelling " + id + ": " + why.getMessage());
        cancel();
        if (connection.getTransport() instanceof NetworkChannel socket) {
            try {
                socket.setOption(StandardSocketOptions.SO_LINGER, 0); // the close resets the connection
            } catch (IOException e) {
                // closed already
            }
        }
        connection.close(why);
        fail(why);
    }

    private void fail(Throwable why) {
        if (responded.compareAndSet(false, true)) {
            watch.stop();
            callback.failed(why);
        }
    }

    private static byte[] event(String json) {
        return ("data: " + json + "\n\n").getBytes(StandardCharsets.UTF_8);
    }

    /** Two runs of events as one: what a client that reads late receives in one write. */
    private static byte[] concat(byte[] a, byte[] b) {
        byte[] both = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        return both;
    }

    /** The client left: every choice is cancelled, and frees its slot and blocks at the next step. */
    void cancel() {
        if (gone.compareAndSet(false, true)) {
            handles.forEach(Scheduler.Handle::cancel);
        }
    }

    private void streamEnd(Choice c) {
        FinishReason reason = c.outcome.reason();
        if (reason == FinishReason.STOP || reason == FinishReason.LENGTH) {
            stream.send(event(chunk(c.index, null, finishReason(reason), null).toString()));
        } else if (reason != FinishReason.CANCELLED && !errorSent) {
            // An error after the stream began is an event of its own, before [DONE].
            errorSent = true;
            stream.send(event(error(c.outcome).body().toString()));
        }
        if (unfinished == 0) {
            if (request.includeUsage()) {
                ObjectNode last = head(request.chat() ? "chat.completion.chunk" : "text_completion");
                last.putArray("choices");
                last.set("usage", usage());
                stream.send(event(last.toString()));
            }
            stream.end(() -> {
                if (responded.compareAndSet(false, true)) {
                    watch.stop();
                    response.write(true, ByteBuffer.wrap(DONE), callback);
                }
            });
        }
    }

    /** The whole answer, once every choice has finished. */
    private void answer() {
        if (gone.get()) {
            fail(new EofException("the client left")); // quiet: Jetty need not log an answer nobody waits for
            return;
        }
        if (!responded.compareAndSet(false, true)) {
            return;
        }
        watch.stop();
        for (Choice c : choices) {
            FinishReason reason = c.outcome.reason();
            if (reason != FinishReason.STOP && reason != FinishReason.LENGTH) {
                OpenAiServer.writeError(response, callback, error(c.outcome));
                return;
            }
        }
        ObjectNode body = head(request.chat() ? "chat.completion" : "text_completion");
        ArrayNode out = body.putArray("choices");
        for (Choice c : choices) {
            ObjectNode choice = out.addObject();
            choice.put("index", c.index);
            if (request.chat()) {
                ObjectNode message = choice.putObject("message");
                message.put("role", "assistant");
                message.put("content", c.text.toString());
            } else {
                choice.put("text", (request.echo() ? c.prompt().text() : "") + c.text);
            }
            if (request.logprobs() >= 0) {
                // With echo, the prompt's tokens first.
                List<Integer> ids = new ArrayList<>();
                List<TokenLogprobs> logprobs = new ArrayList<>();
                if (c.promptLogprobs != null) {
                    Arrays.stream(c.prompt().ids()).forEach(ids::add);
                    logprobs.addAll(Arrays.asList(c.promptLogprobs));
                }
                ids.addAll(c.ids);
                logprobs.addAll(c.logprobs);
                choice.set("logprobs", logprobs(c, ids.stream().mapToInt(Integer::intValue).toArray(),
                        logprobs.toArray(TokenLogprobs[]::new)));
            } else {
                choice.putNull("logprobs");
            }
            choice.put("finish_reason", finishReason(c.outcome.reason()));
            if (request.returnTokenIds()) {
                choice.set("prompt_token_ids", JSON.valueToTree(request.prompts().get(c.index / request.n()).ids()));
                choice.set("token_ids", JSON.valueToTree(c.ids));
            }
        }
        body.set("usage", usage());
        OpenAiServer.writeJson(response, callback, 200, body);
    }

    private static ApiError error(GenerationListener.Outcome o) {
        String why = o.error() != null ? o.error() : "the request ended: " + o.reason().apiName();
        return o.reason() == FinishReason.UNAVAILABLE ? ApiError.unavailable(why) : ApiError.internal(why);
    }

    private ObjectNode head(String object) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("object", object);
        o.put("created", created);
        o.put("model", model);
        return o;
    }

    /**
     * A stream chunk for one choice: text (null for none) or, at its end, the finish reason; with
     * {@code return_token_ids}, a step's ids go in a chunk of their own (as the text may be held back).
     */
    private ObjectNode chunk(int index, String text, String finishReason, int[] ids) {
        ObjectNode o = head(request.chat() ? "chat.completion.chunk" : "text_completion");
        ObjectNode choice = o.putArray("choices").addObject();
        choice.put("index", index);
        if (request.chat()) {
            ObjectNode delta = choice.putObject("delta");
            if (text != null && text.isEmpty() && ids == null && finishReason == null) {
                delta.put("role", "assistant");
            }
            if (text != null) {
                delta.put("content", text);
            }
        } else {
            choice.put("text", text == null ? "" : text);
        }
        choice.putNull("logprobs");
        choice.put("finish_reason", finishReason);
        if (ids != null) {
            choice.set("token_ids", JSON.valueToTree(ids));
        }
        return o;
    }

    /**
     * Log-probabilities of choice {@code c}'s next tokens as OpenAI shapes them: for chat
     * {@code {"content": [{token, logprob, bytes, top_logprobs}]}}, for completions
     * {@code {tokens, token_logprobs, top_logprobs, text_offset}}, where a null entry (the first token of an echoed
     * prompt, which nothing precedes) has null for its logprob and its top tokens.
     */
    private ObjectNode logprobs(Choice c, int[] ids, TokenLogprobs[] logprobs) {
        ObjectNode out = JSON.createObjectNode();
        if (request.chat()) {
            ArrayNode content = out.putArray("content");
            for (int i = 0; i < ids.length; i++) {
                ObjectNode e = tokenEntry(ids[i], logprobs[i].logprob());
                ArrayNode top = e.putArray("top_logprobs");
                for (int k = 0; k < logprobs[i].topIds().length; k++) {
                    top.add(tokenEntry(logprobs[i].topIds()[k], logprobs[i].topLogprobs()[k]));
                }
                content.add(e);
            }
            return out;
        }
        ArrayNode tokens = out.putArray("tokens");
        ArrayNode values = out.putArray("token_logprobs");
        ArrayNode tops = out.putArray("top_logprobs");
        ArrayNode offsets = out.putArray("text_offset");
        for (int i = 0; i < ids.length; i++) {
            String token = token(ids[i]);
            tokens.add(token);
            if (logprobs[i] == null) {
                values.addNull();
                tops.addNull();
            } else {
                values.add(logprobs[i].logprob());
                ObjectNode top = tops.addObject();
                for (int k = 0; k < logprobs[i].topIds().length; k++) {
                    top.put(token(logprobs[i].topIds()[k]), logprobs[i].topLogprobs()[k]);
                }
            }
            offsets.add(c.textOffset);
            c.textOffset += token.length();
        }
        return out;
    }

    private ObjectNode tokenEntry(int id, float logprob) {
        String token = token(id);
        ObjectNode e = JSON.createObjectNode();
        e.put("token", token);
        e.put("logprob", logprob);
        ArrayNode bytes = e.putArray("bytes");
        for (byte b : token.getBytes(StandardCharsets.UTF_8)) {
            bytes.add(b & 0xFF);
        }
        return e;
    }

    /** A token's own text, or {@code token_id:N} (as vLLM writes it) where the model has no tokenizer. */
    private String token(int id) {
        return tokenizer == null || id >= tokenizer.vocabSize() ? "token_id:" + id
                : tokenizer.decode(new int[] {id}, false);
    }

    private ObjectNode usage() {
        int prompt = 0, completion = 0;
        for (CompletionRequest.Prompt p : request.prompts()) {
            prompt += p.ids().length;
        }
        for (Choice c : choices) {
            completion += c.outcome.completionTokens();
        }
        ObjectNode u = JSON.createObjectNode();
        u.put("prompt_tokens", prompt);
        u.put("completion_tokens", completion);
        u.put("total_tokens", prompt + completion);
        return u;
    }

    private static String finishReason(FinishReason reason) {
        return reason == FinishReason.LENGTH ? "length" : "stop";
    }
}
