package io.flover.cli;

import io.flover.openai.ChatTemplate;
import io.flover.server.FloverServer;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import picocli.CommandLine.Option;

/** The OpenAI-compatible HTTP API of {@code serve} and {@code coordinator}. */
final class HttpFlags {
    @Option(names = "--http-port", paramLabel = "PORT",
            description = "serve the OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, ...) on this "
                    + "port, 0 for any, -1 for none (default: 8000); HTTPS with --tls-cert's certificate and key")
    Integer port;

    @Option(names = "--chat-template", paramLabel = "FILE",
            description = "render chat requests with this Jinja template instead of the model's chat_template")
    Path chatTemplate;

    @Option(names = "--stream-stall-timeout", paramLabel = "S", defaultValue = "30",
            description = "seconds a stream's client (gRPC or HTTP) may read nothing while the stream's buffer is "
                    + "full before its request is cancelled and its KV blocks freed (default: ${DEFAULT-VALUE})")
    long stallTimeoutSeconds;

    /** Checks the flags before anything loads. */
    void check() throws IOException {
        if (port != null && port != -1) {
            Flags.requirePort("--http-port", port);
        }
        Flags.require(stallTimeoutSeconds >= 1, "--stream-stall-timeout must be at least 1 second");
        Flags.require(chatTemplate == null || java.nio.file.Files.isRegularFile(chatTemplate),
                "--chat-template " + chatTemplate + " is not a file");
    }

    /** How the gRPC API bounds its streams: a buffer of messages, and the same stall timeout as HTTP's. */
    FloverServer.Streams streams() {
        return new FloverServer.Streams(FloverServer.Streams.DEFAULT.buffered(), Duration.ofSeconds(stallTimeoutSeconds));
    }

    /**
     * Starts the HTTP API beside {@code server}'s gRPC API, unless it is off, and logs where: HTTPS when the gRPC API
     * serves TLS.
     */
    void start(FloverServer server, Path modelDir, String host, boolean tls) throws IOException {
        int p = port != null ? port : 8000;
        if (p == -1) {
            return;
        }
        ChatTemplate template = ChatTemplate.load(modelDir, chatTemplate).orElse(null);
        int bound = server.serveHttp(FloverServer.resolve(host, p), template);
        Flags.log("OpenAI-compatible HTTP API on " + (tls ? "https" : "http") + "://" + host + ":" + bound + "/v1"
                + (template == null ? " (the model has no chat template: chat requests get 400)" : ""));
    }
}
