package io.flover.worker.server;

import com.sun.net.httpserver.HttpServer;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;

/**
 * A process's metrics in the Prometheus text format at {@code http://HOST:PORT/metrics}, with the JVM's own
 * (memory, GC, threads, CPU) beside Flover's. One per process: coordinator, {@code serve}, or worker. A server
 * may add its readiness at {@link #READY_PATH}, in plain HTTP, for probes that cannot ask gRPC health (Kubernetes'
 * gRPC probe does not speak TLS).
 */
public final class MetricsEndpoint implements AutoCloseable {
    /** Where {@link #readiness} answers: 200 while the process is ready, 503 while it is not. */
    public static final String READY_PATH = "/ready";

    private final PrometheusMeterRegistry registry;
    private final HttpServer server;
    private final JvmGcMetrics gc;
    private final ExecutorService thread;

    private MetricsEndpoint(PrometheusMeterRegistry registry, HttpServer server, JvmGcMetrics gc, ExecutorService thread) {
        this.registry = registry;
        this.server = server;
        this.gc = gc;
        this.thread = thread;
    }

    /** Binds {@code host:port} (0 for any free port) and serves a new registry, which the caller fills. */
    public static MetricsEndpoint start(String host, int port) throws IOException {
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        new JvmMemoryMetrics().bindTo(registry);
        JvmGcMetrics gc = new JvmGcMetrics();
        gc.bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ClassLoaderMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
        HttpServer server;
        try {
            server = HttpServer.create(new InetSocketAddress(host, port), 0);
        } catch (IOException e) {
            gc.close();
            throw new IOException("cannot serve metrics on " + host + ":" + port + ": " + e.getMessage(), e);
        }
        server.createContext("/metrics", exchange -> {
            byte[] body = registry.scrape().getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        ExecutorService thread = Executors.newSingleThreadExecutor(
                r -> Thread.ofPlatform().name("flover-metrics").daemon().unstarted(r));
        server.setExecutor(thread);
        server.start();
        return new MetricsEndpoint(registry, server, gc, thread);
    }

    /**
     * Serves {@code ready} at {@link #READY_PATH}: 200 {@code ready} while it says true, 503 {@code not ready}
     * otherwise. Until this is called the path is not served (404).
     */
    public void readiness(BooleanSupplier ready) {
        server.createContext(READY_PATH, exchange -> {
            boolean now = ready.getAsBoolean();
            byte[] body = (now ? "ready\n" : "not ready\n").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            exchange.sendResponseHeaders(now ? 200 : 503, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    public int port() {
        return server.getAddress().getPort();
    }

    @Override
    public void close() {
        server.stop(0);
        thread.shutdownNow();
        gc.close();
        registry.close();
    }
}
